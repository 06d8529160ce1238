#!/usr/bin/python3
"""Generate text with the libdeepseek Python bindings (bindings/python).

    PYTHONPATH=bindings/python python3 examples/python/generate.py [MODEL.gguf] \\
        [-p PROMPT] [-n MAX_TOKENS] [--temp T] [--seed S] [--chat]

MODEL defaults to the shipped demo model models/demo/deepseek-v3-demo-q8_0.gguf when it
exists. Without --chat the prompt is continued as plain text; with --chat it is sent as a user
message through the model's chat template, and the reasoning of R1 models is shown in brackets.
The library is found as the bindings document ($DEEPSEEK_LIBRARY, $DEEPSEEK_BUILD_DIR, build/).
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import deepseek  # noqa: E402

DEMO = os.path.join(ROOT, "models", "demo", "deepseek-v3-demo-q8_0.gguf")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default=DEMO, help="GGUF model (default: the demo model)")
    ap.add_argument("-p", "--prompt", default="The three primary colors are")
    ap.add_argument("-n", "--max-tokens", type=int, default=48)
    ap.add_argument("--temp", type=float, default=0.0, help="temperature (0: greedy)")
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chat", action="store_true", help="send the prompt as a chat message")
    ap.add_argument("--template", default="auto", help="chat template for --chat")
    args = ap.parse_args(argv)
    if not os.path.isfile(args.model):
        ap.error("no model at %s (give a GGUF path)" % args.model)

    with deepseek.Model(args.model) as model, \
            model.session(temperature=args.temp, top_p=args.top_p, seed=args.seed) as s:
        t0 = time.monotonic()
        if args.chat:
            msgs = [{"role": "user", "content": args.prompt}]
            pieces = s.chat(msgs, args.max_tokens, template=args.template, kinds=True)
        else:
            print(args.prompt, end="")
            pieces = s.generate(args.prompt, args.max_tokens, kinds=True)
        for kind, text in pieces:       # an iterator: text appears as it is generated
            if kind == deepseek.TextKind.REASONING:
                text = "[%s]" % text
            print(text, end="", flush=True)
        dt = time.monotonic() - t0
        print()
        n = len(s.last_tokens)
        print("[%d tokens in %.2f s, %.1f tokens/s; finished: %s]"
              % (n, dt, n / dt if dt > 0 else 0.0, s.finish_reason), file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except deepseek.DeepSeekError as e:
        print("generate.py: %s" % e, file=sys.stderr)
        sys.exit(1)
