// The HTTP load generator of bench/http.ts, run as a child process so it never shares the server's
// JavaScript thread. Reads autocannon options as JSON from argv[2] (a file path), prints the summary
// as JSON on stdout.
import autocannon from "autocannon";
import { readFileSync } from "node:fs";

const options = JSON.parse(readFileSync(process.argv[2], "utf8"));
const result = await autocannon(options);
process.stdout.write(JSON.stringify(result));
