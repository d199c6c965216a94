// A second process on a LanceDB directory, for the tests of lib/backends/lancedb
// across processes (test/lib/lancedb-processes.test.ts, and LanceDB's failure
// situations in test/conformance/situations/lancedb.ts; started by
// test/support/lancedb-second-process.ts). Row i is written as every writer of those
// tests writes it (id doc-<i>, vector sin(i*7+d+1), text "text doc <i>": see rowsFrom in
// test/conformance/situations/situation.ts). Plain CommonJS on the
// real @lancedb/lancedb, so that it runs with `node` alone:
//   node lancedb-other-process.js append <dir> <table> <from> <count> <dimensions>
//     appends rows doc-<from>.. in the package's layout (id, vector, text, metadata)
//   node lancedb-other-process.js optimize <dir> <table> <rounds> <rowsPerRound> <dimensions> <from>
//     appends <rowsPerRound> rows (none if 0) and optimizes, <rounds> times (to collide with another optimizer)
// Prints one JSON line per step on stdout; exits 0 when done, 1 on an error.
'use strict';
const lancedb = require('@lancedb/lancedb');

function rows(from, count, dimensions) {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return {
      id: `doc-${i}`,
      vector: Array.from({ length: dimensions }, (_, d) => Math.sin(i * 7 + d + 1)),
      text: `text doc ${i}`,
      metadata: JSON.stringify({ n: i, writer: 'other process' }),
    };
  });
}

async function main() {
  const [command, dir, tableName, ...rest] = process.argv.slice(2);
  const connection = await lancedb.connect(dir, { readConsistencyInterval: 0 });
  const table = await connection.openTable(tableName);
  try {
    if (command === 'append') {
      const [from, count, dimensions] = rest.map(Number);
      // In batches, like an ingest would: several versions, each appending rows.
      for (let done = 0; done < count; done += 1000) {
        await table.add(rows(from + done, Math.min(1000, count - done), dimensions));
      }
      console.log(JSON.stringify({ appended: count, rows: await table.countRows() }));
    } else if (command === 'optimize') {
      const [rounds, perRound, dimensions, from] = rest.map(Number);
      let conflicts = 0;
      for (let round = 0; round < rounds; round++) {
        if (perRound > 0) await table.add(rows(from + round * perRound, perRound, dimensions));
        try {
          await table.optimize();
        } catch (err) {
          if (!/conflict/i.test(String(err))) throw err;
          conflicts += 1;
        }
      }
      console.log(JSON.stringify({ rounds, conflicts }));
    } else {
      throw new Error(`unknown command ${command}`);
    }
  } finally {
    table.close();
    connection.close();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(String(err && err.stack ? err.stack : err));
    process.exit(1);
  },
);
