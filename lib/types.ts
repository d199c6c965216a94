/**
 * The vocabulary shared by every part of the engine: documents, the Backend
 * interface every vector store implements, and what a status or a query answers.
 *
 * Nothing here knows about Node-RED. A backend is driven by the nodes, by the
 * triggerer (through `status`) and by the conformance tests, all through this
 * interface alone.
 */

/** Similarity metric of a collection. Scores are always "higher is better". */
export type Metric = 'cosine' | 'l2' | 'dot';

/** A document ready to be written: the vector is already computed. */
export interface VectorDocument {
  id: string;
  vector: Float32Array | number[];
  text?: string;
  metadata?: Record<string, unknown>;
}

/**
 * A collection another tool made (LangChain, LlamaIndex, a script, the store's own
 * client), watched where it is: the sensor, the health check and sample queries take
 * it wherever they take a collection name. Only `name` is common to every store;
 * each backend checks the fields it knows and refuses the others by name.
 */
export interface ExistingCollection {
  /**
   * What the other tool calls it, as is (not held to the package's naming rule):
   * the table (pgvector, LanceDB), the collection (Chroma), the LangChain collection
   * (preset "langchain"), or the `table_name` given to LlamaIndex (preset "llamaindex").
   * Given as `table` too (the pgvector and LanceDB spelling): parseExistingCollection
   * turns it into `name`.
   */
  name: string;
  /** pgvector: the table's schema; "public" when not given. */
  schema?: string;
  /**
   * pgvector and LanceDB: the vector column. pgvector: "embedding" when not given;
   * LanceDB: the table's only fixed-size float list when not given.
   */
  column?: string;
  /**
   * LanceDB: the database directory holding the table, when it is not the one of
   * the vector-store configuration (resolved as that Path is).
   */
  path?: string;
  /** pgvector: the one index to watch; when not given, any vector index (hnsw, ivfflat) on the column. */
  index?: string;
  /**
   * pgvector: a fixed layout of another tool. "langchain": table
   * `langchain_pg_embedding`, rows of the collection `name` of
   * `langchain_pg_collection`; "llamaindex": table `data_<name>`.
   */
  preset?: 'langchain' | 'llamaindex';
}

/** A package collection's name, or a collection made by another tool. */
export type CollectionRef = string | ExistingCollection;

/** Options for `ensureCollection`. */
export interface CollectionSpec {
  dimensions: number;
  metric?: Metric;
}

/** Options for `upsert`. */
export interface UpsertOptions {
  /**
   * Start or catch up the vector index build in the background after the write
   * (pgvector, LanceDB). Backends that index as they write ignore it.
   */
  buildIndex?: boolean;
  /**
   * Memory backend only: make this collection's indexing fail with this reason,
   * to exercise failure handling. Other backends reject it.
   */
  simulateFailure?: string;
}

export interface UpsertResult {
  /** Documents written by this call. */
  written: number;
  /** Documents in the collection after the write. */
  totalCount: number;
}

/**
 * What `delete` removes: the documents whose id is in `ids`, and for each source S
 * the document S and every chunk of it (ids starting with `S#`). At least one id or source.
 */
export interface DeleteSelector {
  ids?: string[];
  sources?: string[];
}

export interface DeleteResult {
  /** Documents removed by this call (0 when none matched: not an error). */
  deleted: number;
  /** Documents in the collection after the delete. */
  totalCount: number;
}

export type IndexState = 'indexing' | 'ready' | 'failed';

/** What a store says about a collection's indexing, right now. */
export interface CollectionStatus {
  state: IndexState;
  /** Documents stored (acknowledged writes). */
  documentCount: number;
  /** Documents searchable through the index. */
  indexedCount: number;
  /** 0..1 when the store knows it, else null. */
  progress: number | null;
  /** Seconds until ready when the store can tell, else null. */
  etaSeconds: number | null;
  /**
   * The store's own phase name while indexing ("building index: loading tuples",
   * "waiting for old snapshots", "optimizing"), else null or absent.
   */
  phase?: string | null;
  /**
   * A short sentence: why indexing failed (state "failed"), or what is going on
   * ("20,000 rows not yet indexed", "waiting for a free connection to start the
   * build"). Shown to the user on progress, in the status and in messages.
   */
  detail?: string;
  /** State "failed": the store's own code for the failure when it has one (e.g. SQLSTATE "57014"). */
  code?: string;
}

/** What a status poll is for, so that a store can choose how exact to be. */
export interface StatusHint {
  expectedCount?: number;
}

export interface CollectionStats {
  documentCount: number;
  indexedCount: number;
  dimensions: number;
  metric: Metric;
  /** e.g. "exact (flat)", "hnsw", "ivf_pq". */
  indexType: string;
  /** Which search answers queries now, when the backend chooses it itself (the memory store: exact or its HNSW index). */
  search?: 'exact' | 'hnsw';
}

export interface QueryRequest {
  vector: Float32Array | number[];
  topK: number;
  /** Exact-match filter on metadata fields: every key must equal its value. */
  filter?: Record<string, unknown>;
}

export interface QueryHit {
  id: string;
  /** Higher is better; cosine similarity for the cosine metric. */
  score: number;
  text: string | null;
  metadata: Record<string, unknown>;
}

/**
 * A vector store. One instance per `vector-store` config node (per process for
 * embedded stores that must share files). Every method may reject with a
 * `VectorStoreError`; its `transient` flag tells the triggerer whether to retry.
 */
export interface Backend {
  /** Short name used in messages: "memory", "lancedb", "pgvector", "chroma". */
  readonly name: string;

  /** Create the collection if it does not exist; fail if it exists with another dimension. */
  ensureCollection(collection: string, spec: CollectionSpec): Promise<void>;
  collectionExists(collection: CollectionRef): Promise<boolean>;
  /** Write (insert or replace by id). Resolves once the write is durable. */
  upsert(collection: string, docs: VectorDocument[], options?: UpsertOptions): Promise<UpsertResult>;
  /**
   * `hint.expectedCount`: the documents the asking wait expects. A store that
   * estimates its counts (pgvector on large tables) counts exactly when the
   * answer could decide the wait; stores that always count exactly ignore it.
   */
  /**
   * Remove documents by id and by source (with its chunks), all or nothing where
   * the store allows it. Resolves once durable; queries then never return them.
   * NOT_FOUND for a missing collection, INVALID_INPUT for an empty selector.
   */
  delete(collection: string, selector: DeleteSelector): Promise<DeleteResult>;
  status(collection: CollectionRef, hint?: StatusHint): Promise<CollectionStatus>;
  stats(collection: CollectionRef): Promise<CollectionStats>;
  query(collection: CollectionRef, request: QueryRequest): Promise<QueryHit[]>;
  /** Release connections, timers and file handles. Idempotent. */
  close(): Promise<void>;
}

/** One retry of an embedding request, as an embedder reports it before waiting. */
export interface EmbedRetry {
  /** Why, in a short sentence without secrets: 'HTTP 429: "rate limited"', "network error: ECONNRESET". */
  reason: string;
  /** How long the request waits before it is sent again. */
  delayMs: number;
  /** Which retry of this request it is: 1 for the first. */
  attempt: number;
  /** The embedder's limit of requests at once after this failure (it shrinks on rate limits). */
  concurrency: number;
}

export interface EmbedOptions {
  /** Called for every retry, before the wait; an exception it throws is ignored. */
  onRetry?(retry: EmbedRetry): void;
}

/** Turns texts into vectors. */
export interface Embedder {
  readonly name: string;
  /** Known up front for `hash`; for remote models, learnt from the first answer. */
  readonly dimensions: number | null;
  /** One vector per text, in input order. */
  embed(texts: string[], signal?: AbortSignal, options?: EmbedOptions): Promise<Float32Array[]>;
  close?(): Promise<void>;
}
