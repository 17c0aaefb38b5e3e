// bench.mjs - npm gpt-tokenizer's speed on one core, for tokenizer_bench.py.
// Usage: node bench.mjs ENCODING SECONDS COLD FILE...
// Prints the same JSON lines as tokenize-bench (one per file). COLD=1 clears
// gpt-tokenizer's merge cache before every pass (Tollgate's tokenizer keeps
// no cache between calls); COLD=0 measures it as shipped, cache warm.
import { readFileSync } from 'node:fs';

const [encoding, secondsArg, coldArg, ...files] = process.argv.slice(2);
const tok = await import(`gpt-tokenizer/encoding/${encoding}`);
const seconds = Number(secondsArg) > 0 ? Number(secondsArg) : 1;
const cold = coldArg === '1';
const opts = { disallowedSpecial: new Set() }; // special tokens are text, as in Tollgate

const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const bytes = Buffer.byteLength(text, 'utf8');
  const tokens = tok.encode(text, opts).length; // untimed: loads the ranks
  let passes = 0;
  const t0 = cpu();
  let t = t0;
  while (t - t0 < seconds) {
    if (cold) tok.clearMergeCache();
    if (tok.encode(text, opts).length !== tokens) throw new Error(`${file}: count changed`);
    passes++;
    t = cpu();
  }
  const s = t - t0;
  console.log(JSON.stringify({ file, encoding, bytes, tokens, passes, cpu_s: s,
    mb_per_s: bytes * passes / s / 1e6, tokens_per_s: tokens * passes / s, cold }));
}
