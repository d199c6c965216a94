import should from 'should';
import { redact, redactError, secretProblem } from '../../lib/redact';

describe('redact: secrets never show in error texts', () => {
  const secret = 'sk-Secret/Value+123456';
  const forms: Array<[string, string]> = [
    ['verbatim', secret],
    ['URL-encoded', encodeURIComponent(secret)],
    ['upper-cased', secret.toUpperCase()],
    ['lower-cased', secret.toLowerCase()],
    ['base64', Buffer.from(secret).toString('base64')],
    ['base64 inside Basic auth', Buffer.from(`user:${secret}`).toString('base64')],
    ['base64url', Buffer.from(secret).toString('base64url')],
    ['JSON-escaped', JSON.stringify(secret).slice(1, -1)],
    ['cut short', secret.slice(0, 9)],
  ];
  for (const [name, form] of forms) {
    it(`removes the secret ${name}`, () => {
      const out = redact(`server said: invalid token "${form}" for this request`, [secret]);
      out.should.not.containEql(form);
      out.should.containEql('***');
      out.should.startWith('server said: invalid token');
    });
  }

  it('leaves texts without the secret alone, and ignores empty secrets', () => {
    redact('nothing to hide here', [secret, '', undefined, null]).should.equal('nothing to hide here');
  });

  it('redacts an error, its stack and its cause', () => {
    const err = new Error(`boom ${secret}`, { cause: new Error(`inner ${secret}`) });
    const out = redactError(err, [secret]);
    out.message.should.equal('boom ***');
    should(out.stack).not.containEql(secret);
    ((out as { cause?: Error }).cause as Error).message.should.equal('inner ***');
  });

  it('names the field, never the value, of a secret with a line break', () => {
    const problem = secretProblem('apiKey', 'abc123\n') as string;
    problem.should.containEql('apiKey');
    problem.should.not.containEql('abc123');
    should(secretProblem('apiKey', 'fine-key')).be.null();
    should(secretProblem('apiKey', undefined)).be.null();
  });
});
