"""The `ds` program's subcommands: output formats and exit codes.

Exit codes follow the status codes: 0 ok, 1 usage, 10 + (-status) for a library failure
(DS_ERR_IO = -2 → 12, DS_ERR_FORMAT = -3 → 13, DS_ERR_UNSUPPORTED = -4 → 14).
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DS_BUILD_ROOT", ROOT / "build"))
DS = BUILD / "examples" / "ds"
SHARED = Path(os.environ.get("DS_SHARED_DIR", ROOT.parent / "shared"))
V3 = SHARED / "fixtures" / "tokenizers" / "deepseek-v3" / "tokenizer.json"
LLM = SHARED / "fixtures" / "tokenizers" / "deepseek-llm" / "ggml-vocab-deepseek-llm.gguf"


def ds(*args, stdin=None):
    if not DS.exists():
        pytest.skip(f"SKIPPED: ds is not built at {DS}")
    return subprocess.run([str(DS), *map(str, args)], input=stdin, capture_output=True, text=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "tiny.gguf"
    subprocess.run(["/usr/bin/python3", str(ROOT / "tools" / "make-test-model.py"), "-o", str(out),
                    "--preset", "tiny", "--type", "q8_0"], check=True)
    return out


def test_help_and_usage():
    r = ds("--help")
    assert r.returncode == 0
    for cmd in ("info", "tokenize", "detokenize", "logits", "generate", "chat", "perplexity", "bench"):
        assert cmd in r.stdout
        assert ds(cmd, "--help").returncode == 0
    assert ds().returncode == 1
    assert ds("no-such-command").returncode == 1
    assert ds("info").returncode == 1                      # -m missing
    assert ds("logits", "-m", "x").returncode == 1         # --tokens missing


def test_info_json(tiny):
    r = ds("info", "-m", tiny, "--tensors", "--meta")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["architecture"] == "deepseek2" and j["n_layer"] == 2 and j["n_vocab"] == 512
    assert j["kv_bytes_per_token"]["f32"] == 2 * (j["kv_lora_rank"] + j["qk_rope_head_dim"]) * 4
    assert len(j["tensors"]) == j["n_tensors"] and "Q8_0" in j["tensor_types"]
    assert j["metadata"]["general.architecture"] == "deepseek2"


def test_exit_codes_follow_status(tmp_path):
    assert ds("info", "-m", tmp_path / "missing.gguf").returncode == 12
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 10)
    r = ds("info", "-m", junk)
    assert r.returncode == 13 and "magic" in r.stderr
    if LLM.exists():
        r = ds("info", "-m", LLM)                          # a vocab-only llama file
        assert r.returncode == 14 and "llama" in r.stderr


def test_logits_json(tiny):
    r = ds("logits", "-m", tiny, "--tokens", "1,2,3", "--all", "--precision", "f32")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["n_vocab"] == 512 and len(j["logits"]) == 3 and len(j["logits"][0]) == 512
    last = json.loads(ds("logits", "-m", tiny, "--tokens", "1,2,3", "--precision", "f32").stdout)
    assert len(last["logits"]) == 1
    assert max(abs(a - b) for a, b in zip(last["logits"][0], j["logits"][2])) < 1e-4
    assert ds("logits", "-m", tiny, "--tokens", "1,99999").returncode == 11   # invalid argument


def test_generate_token_ids_without_tokenizer(tiny):
    r = ds("generate", "-m", tiny, "--tokens", "1,2,3", "-n", "5")
    assert r.returncode == 0, r.stderr
    ids = [int(t) for t in r.stdout.split()]
    assert len(ids) == 5 and all(0 <= t < 512 for t in ids)
    assert "tokens/s" in r.stderr
    again = ds("generate", "-m", tiny, "--tokens", "1,2,3", "-n", "5")
    assert again.stdout == r.stdout                      # greedy is deterministic


@pytest.mark.parametrize("tok", [V3, LLM], ids=["v3-json", "llm-gguf"])
def test_tokenize_detokenize(tok):
    if not tok.exists():
        pytest.skip("SKIPPED: ../shared fixtures are absent")
    text = "Hello world! 你好, ünïcödé 🙂 12345"
    r = ds("tokenize", "-m", tok, "--no-bos", text)
    assert r.returncode == 0, r.stderr
    ids = json.loads(r.stdout)
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
    stdin = ds("tokenize", "-m", tok, "--no-bos", stdin=text)       # text from stdin
    assert json.loads(stdin.stdout) == ids
    back = ds("detokenize", "-m", tok, ",".join(map(str, ids)))
    assert back.returncode == 0 and back.stdout == text + "\n"
    piped = ds("detokenize", "-m", tok, stdin=r.stdout)              # JSON array on stdin
    assert piped.stdout == text + "\n"


def test_tokenize_special_flag():
    if not V3.exists():
        pytest.skip("SKIPPED: ../shared fixtures are absent")
    text = "<｜User｜>hi"
    plain = json.loads(ds("tokenize", "-m", V3, "--no-bos", text).stdout)
    special = json.loads(ds("tokenize", "-m", V3, "--no-bos", "--special", text).stdout)
    assert len(special) < len(plain) and 128803 in special and 128803 not in plain


def test_bench_json(tiny):
    """`ds bench --json`: one object with the keys the performance issue asks for, and the
    fractions computed from the same run's numbers (small run: 8-token prompt, 4 tokens, a
    64 MiB bandwidth probe)."""
    r = ds("bench", "-m", tiny, "-p", 8, "-n", 4, "-t", 1, "-r", 2, "--bw-mib", 64, "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    for key in ("prefill_tps", "decode_tps", "ttft_ms", "peak_rss_bytes", "weight_bytes_per_token",
                "bandwidth_gbs", "decode_bw_fraction", "bf16_peak_gflops", "prefill_peak_fraction",
                "threads", "decode_tps_interleaved", "bandwidth_best_pass_gbs", "runs"):
        assert key in j, key
    assert j["threads"] == 1 and j["n_prompt"] == 8 and j["n_gen"] == 4 and j["repeat"] == 2
    assert j["bandwidth_buffer_bytes"] == 64 << 20
    assert j["prefill_tps"] > 0 and j["decode_tps"] > 0 and j["ttft_ms"] > 0
    assert j["peak_rss_bytes"] > 0 and j["weight_bytes_per_token"] > 0
    # the headline: decode interleaved with probe passes, both over the same stretch of time
    assert j["bandwidth_gbs"] > 0 and j["decode_tps_interleaved"] > 0
    want = j["weight_bytes_per_token"] * j["decode_tps_interleaved"] / (j["bandwidth_gbs"] * 1e9)
    assert j["decode_bw_fraction"] == pytest.approx(want, rel=1e-3, abs=1e-4)
    # and a probe right after each timed run: its best pass, median pass and fraction
    assert len(j["runs"]) == 2
    assert max(run["decode_tps"] for run in j["runs"]) == pytest.approx(j["decode_tps"], rel=1e-3)
    assert max(run["bandwidth_gbs"] for run in j["runs"]) == pytest.approx(
        j["bandwidth_best_pass_gbs"], rel=1e-3)
    for run in j["runs"]:
        assert 0 < run["bandwidth_median_gbs"] <= run["bandwidth_gbs"]
        want = j["weight_bytes_per_token"] * run["decode_tps"] / (run["bandwidth_gbs"] * 1e9)
        assert run["decode_bw_fraction"] == pytest.approx(want, rel=1e-3, abs=1e-4)
    if j["bf16_peak_gflops"] > 0:   # 0 where oneDNN has no bf16 matmul on this CPU
        # for reference: the best prefill against the best peak measured after all runs
        want = j["prefill_flops_per_token"] * j["prefill_tps"] / 1e9 / j["bf16_peak_gflops"]
        assert abs(j["prefill_best_peak_fraction"] - want) <= 1e-4 + 1e-3 * want
        # the headline: each run's prefill against the peak sampled right after it, best run
        fr = []
        for run in j["runs"]:
            assert run["bf16_peak_gflops"] > 0 and run["prefill_tps"] > 0
            f = j["prefill_flops_per_token"] * run["prefill_tps"] / 1e9 / run["bf16_peak_gflops"]
            assert abs(run["prefill_peak_fraction"] - f) <= 1e-4 + 1e-3 * f
            fr.append(f)
        assert abs(j["prefill_peak_fraction"] - max(fr)) <= 1e-4 + 1e-3 * max(fr)
        assert max(run["prefill_tps"] for run in j["runs"]) == pytest.approx(j["prefill_tps"],
                                                                             rel=1e-3)
    r = ds("bench", "-m", tiny, "-p", 8, "-n", 4, "-t", 1, "-r", 1, "--no-probe", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["bandwidth_gbs"] == 0 and j["decode_bw_fraction"] == 0
    # the default probe buffer: >= 1 GiB and >= 4x the largest cache sysfs lists (so it reads DRAM)
    llc = 0
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        t = f.read_text().strip()
        llc = max(llc, int(t.rstrip("KM")) << {"K": 10, "M": 20}.get(t[-1], 0))
    want = max(1024, 4 * -(-llc // (1 << 20))) << 20                 # in whole MiB
    assert j["bandwidth_buffer_bytes"] == want, (j["bandwidth_buffer_bytes"], llc)
