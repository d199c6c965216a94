import should from 'should';
import { collectionKey, collectionLabel, parseExistingCollection, refuseFields } from '../../lib/collection-ref';

describe('collections made by other tools: the shape every store shares (lib/collection-ref)', () => {
  it('keeps the fields given, drops empty ones, names the collection for messages and for sharing status calls', () => {
    should(parseExistingCollection({ name: 'Items.v2', schema: 'Other Tools', column: '', index: null }, 'msg.collection')).eql({
      name: 'Items.v2',
      schema: 'Other Tools',
    });
    should(collectionLabel('docs')).equal('docs');
    should(collectionLabel({ name: 'items', schema: 'public' })).equal('public.items');
    should(collectionLabel({ name: 'docs', preset: 'langchain' })).equal('langchain:docs');
    should(collectionLabel({ name: 'my.table' })).equal('my.table');
    // The same collection, the same key; another column, another key; never a package name's key.
    should(collectionKey({ name: 'items', schema: 'public' })).equal(collectionKey({ schema: 'public', name: 'items' }));
    should(collectionKey({ name: 'items', column: 'a' })).not.equal(collectionKey({ name: 'items', column: 'b' }));
    should(collectionKey({ name: 'docs' })).not.equal(collectionKey('docs'));
  });

  it('names the bad field and the fix', () => {
    should(() => parseExistingCollection('items', 'msg.collection')).throw(/^msg\.collection must be an object such as \{"name": "my_table"\}/);
    should(() => parseExistingCollection({}, 'msg.collection')).throw(/^msg\.collection\.name is missing/);
    should(() => parseExistingCollection({ name: 3 }, 'msg.collection')).throw(/^msg\.collection\.name must be a string, but got 3/);
    should(() => parseExistingCollection({ name: 'a', tabel: 'b' }, 'msg.collection')).throw(/does not know: "tabel"\. Use name, schema, column, index, path, preset, table/);
    // `table` is the pgvector and LanceDB word for the name; not both, unless they agree.
    should(parseExistingCollection({ table: 'items', schema: 'rag' }, 'msg.collection')).eql({ name: 'items', schema: 'rag' });
    should(parseExistingCollection({ table: 'items', name: 'items' }, 'msg.collection')).eql({ name: 'items' });
    should(() => parseExistingCollection({ name: 'a', table: 'b' }, 'msg.collection')).throw(/gives both a name \("a"\) and a table \("b"\): give one of them/);
    should(parseExistingCollection({ table: 'docs', path: '/data/other-lancedb' }, 'msg.collection')).eql({ name: 'docs', path: '/data/other-lancedb' });
    should(() => parseExistingCollection({ name: 'a', preset: 'haystack' }, 'msg.collection')).throw(/^msg\.collection\.preset must be one of "langchain", "llamaindex"/);
    should(() => parseExistingCollection({ name: 'a\nb' }, 'msg.collection')).throw(/control character/);
    should(() => parseExistingCollection({ name: ' a' }, 'msg.collection')).throw(/starts or ends with a space/);
    should(() => parseExistingCollection({ name: 'x'.repeat(513) }, 'msg.collection')).throw(/too long \(513 characters; at most 512\)/);
    // A node's properties are named as the editor shows them.
    should(() => parseExistingCollection({ name: '' }, 'the node', { name: 'Collection' })).throw(/^Collection is missing/);
  });

  it('a store that has no schemas, columns or indexes refuses them by name', () => {
    should(() => refuseFields({ name: 'a', schema: 'public' }, 'Chroma', ['schema', 'column', 'index', 'preset'])).throw(
      /^"schema" only applies to a pgvector table; a Chroma collection made by another tool is named by "name" alone/,
    );
    refuseFields({ name: 'a' }, 'Chroma', ['schema']);
  });
});
