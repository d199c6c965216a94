/** Assertions on the engine's VectorStoreError, shared by the backend tests. */
import should from 'should';
import { VectorStoreError } from '../../lib/errors';

/** Expect `promise` to reject with a VectorStoreError of this code (and transience, if given). */
export async function rejectsWith(promise: Promise<unknown>, code: string, transient?: boolean): Promise<VectorStoreError> {
  try {
    await promise;
  } catch (err) {
    should(err).be.instanceOf(VectorStoreError);
    const e = err as VectorStoreError;
    should(e.code).equal(code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (transient !== undefined) should(e.transient).equal(transient);
    return e;
  }
  throw new Error(`expected a ${code} error, but the call succeeded`);
}

/** Expect `fn` to throw a VectorStoreError of this code synchronously. */
export function throwsWith(fn: () => unknown, code: string): VectorStoreError {
  try {
    fn();
  } catch (err) {
    should(err).be.instanceOf(VectorStoreError);
    should((err as VectorStoreError).code).equal(code, (err as Error).message);
    return err as VectorStoreError;
  }
  throw new Error(`expected a ${code} error, but the call succeeded`);
}
