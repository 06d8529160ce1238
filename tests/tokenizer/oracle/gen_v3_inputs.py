#!/usr/bin/env python3
"""Write tests/tokenizer/data/v3_inputs.json: the DeepSeek-V3 tokenizer test inputs.

Hand-written cases (English, code, `~`, digit runs, CJK, kana, Hangul, emoji and ZWJ sequences,
combining marks, Arabic, Cyrillic, Devanagari and other scripts, whitespace/newline/tab mixes,
control characters, every added token, chat/FIM/tool markup) followed by 300 pseudo-random
strings (fixed seed) drawn from the same kinds of characters.

Random strings use only code points assigned in Unicode 14 (this Python's unicodedata is
asserted to be 14.0.0): the PCRE2 library we link (10.42) has Unicode 14 tables, while the
JavaScript oracle uses a newer Unicode; characters assigned later (e.g. U+1FA77, CJK Ext I) are
\p{Cn} for us and \p{So}/\p{Lo} for it. U+0085 and U+FEFF are excluded because JavaScript's \s
differs from Unicode White_Space there (see make_v3_expected.mjs).

Usage (from the project root): python3 tests/tokenizer/oracle/gen_v3_inputs.py [shared-dir]
then regenerate the expected ids with make_v3_expected.mjs.
"""
import json
import os
import random
import sys
import unicodedata

SHARED = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DS_SHARED_DIR", "../shared")
OUT = "tests/tokenizer/data/v3_inputs.json"

C = []
def add(name, text): C.append({"name": name, "text": text})

# --- English prose
add("en-hello", "Hello world")
add("en-sentence", "The quick brown fox jumps over the lazy dog.")
add("en-paragraph", "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness; it was the epoch of belief, it was the epoch of incredulity!\nWe had everything before us, we had nothing before us...")
add("en-contractions", "I'm sure you're right, but they'll say it's theirs. We've done what we'd planned; he'd've known. Don't DON'T can't CAN'T I'M You'Re")
add("en-quotes", "\"Quoted\" 'single' `backtick` \u201ccurly\u201d \u2018curly\u2019 \u00abguillemets\u00bb")
add("en-numbers", "In 2024, 3.14159 people paid $1,000,000.00 (about 12% of 7.5e-3) on 2024-01-31 at 12:30:45.")
add("en-url-email", "Visit https://www.example.com/path/to/page?query=1&x=2#frag or mail john.doe+test@example.co.uk.")
add("en-caps-mixed", "HTTPServerError in iPhone XML parser: camelCase snake_case kebab-case SCREAMING_CASE .NET _private __dunder__")
add("en-punct-runs", "Wait... what?!?! No way!!! (really) [yes] {maybe} <tag> -- --- ... ,,, ;;; ::")
add("en-leading-space", " leading space")
add("en-only-space", "   ")
add("en-single-char", "a")
add("en-empty-ish", ".")
# --- code
add("code-python", "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\nprint([fib(i) for i in range(10)])  # [0, 1, 1, 2, ...]\n")
add("code-c", "#include <stdio.h>\n\nint main(int argc, char **argv) {\n\tfor (int i = 0; i < argc; ++i) {\n\t\tprintf(\"%d: %s\\n\", i, argv[i]);\n\t}\n\treturn 0;\n}\n")
add("code-js", "const add = (a, b) => a + b;\nexport default async function* gen() { yield* [1, 2, 3]; }\nlet x = a ?? b; x ||= {}; x?.y?.z;\n")
add("code-rust", "fn main() {\n    let v: Vec<u8> = (0..=255).collect();\n    println!(\"{:?}\", &v[..4]);\n    let s = |x: &str| -> String { x.to_owned() };\n}\n")
add("code-json", "{\"name\": \"test\", \"values\": [1, 2.5, -3e10, true, null], \"nested\": {\"k\": \"v\"}}")
add("code-html", "<!DOCTYPE html>\n<html lang=\"en\"><body><div class=\"a b\">&nbsp;&lt;x&gt;</div></body></html>")
add("code-shell", "cd ~/projects && ls -la | grep -E '^d' > /dev/null 2>&1; echo $HOME ${PATH} $((1+2))")
add("code-sql", "SELECT id, COUNT(*) AS n FROM users WHERE name LIKE '%bob%' GROUP BY id HAVING n >= 2;")
add("code-regex", "re.compile(r'^(?:[a-z0-9!#$%&*+/=?^_`{|}~-]+)@\\w+\\.[a-z]{2,}$')")
add("code-markdown", "# Title\n\n- item **bold** _it_\n- `code`\n\n```python\nx = 1\n```\n\n> quote\n\n| a | b |\n|---|---|\n")
add("code-indent-spaces", "if x:\n        y = 1\n            z = 2\n  \n")
add("code-operators", "a+=1; b-=2; c*=3; d/=4; e%=5; f<<=1; g>>=2; h&=3; i|=4; j^=5; k**=2; l//=3; m!=n; o==p; q<=r; s>=t; u->v; w=>x; y::z")
# --- tilde
add("tilde-double", "a ~~b")
add("tilde-approx", "x ~= y")
add("tilde-home", "~/.bashrc")
add("tilde-alone", "~")
add("tilde-run", "~~~ ~~~~ ~")
add("tilde-word", "~a ~A ~_ ~1 !~ a~b a~ ~~")
add("tilde-strike", "This is ~~struck~~ text, approx ~5 min, C++ ~Destructor() {}")
add("tilde-newline", "end ~\n~\nstart")
# --- digits
add("digits-long", "1234567890" * 5)
add("digits-sevens", "3333333")
add("digits-groups", "1 12 123 1234 12345 123456 1234567 12345678 123456789")
add("digits-spaced", "  42   007 0 00 000 0000")
add("digits-mixed", "abc123def4567ghi89 x1y22z333w4444")
add("digits-decimal", "3.141592653589793238462643383279 -0.000001 1e100 0x1F 0b1010 0o777")
add("digits-fullwidth", "\uff11\uff12\uff13\uff14\uff15 \uff10")
add("digits-arabic-indic", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669 \u06f1\u06f2\u06f3")
add("digits-devanagari", "\u0966\u0967\u0968\u0969\u096a")
add("digits-other-N", "x\u00b2+y\u00b3=z\u00b9 \u00bd \u00bc \u2162 \u216b \u2460\u2461\u2462 \u2070\u2074 \u2155")
add("digits-huge", "9" * 301)
# --- CJK
add("zh-hello", "\u4f60\u597d\uff0c\u4e16\u754c\uff01")
add("zh-sentence", "\u6df1\u5ea6\u6c42\u7d22\u662f\u4e00\u5bb6\u4e13\u6ce8\u4e8e\u4eba\u5de5\u667a\u80fd\u7684\u516c\u53f8\u3002\u6211\u4eec\u7684\u76ee\u6807\u662f\u63a2\u7d22AGI\u7684\u672c\u8d28\u3002")
add("zh-mixed", "\u4eca\u5929\u662f2024\u5e741\u670831\u65e5\uff0c\u6e29\u5ea6\u662f-5\u00b0C\u3002Python\u662f\u6700\u597d\u7684\u8bed\u8a00\u5417\uff1f")
add("zh-traditional", "\u7e41\u9ad4\u4e2d\u6587\u8207\u7c21\u9ad4\u4e2d\u6587\u7684\u5340\u5225\u3002")
add("zh-range-edges", "\u4e00\u9fa5\u9fa6\u9fff\u3400\u4dbf \U00020000\U0002a6df \uf900\uff5e")
add("zh-punct", "\u300c\u5f15\u53f7\u300d\u300e\u4e66\u540d\u300f\u3010\u62ec\u53f7\u3011\u2014\u2014\u2026\u2026\u3001\uff1b\uff1a")
add("ja-hiragana", "\u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\u3002\u3042\u308a\u304c\u3068\u3046\u3054\u3056\u3044\u307e\u3059\uff01")
add("ja-katakana", "\u30ab\u30bf\u30ab\u30ca\u3068\u30b3\u30f3\u30d4\u30e5\u30fc\u30bf\u30fc\u30fb\u30d7\u30ed\u30b0\u30e9\u30e0")
add("ja-mixed", "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3067\u3059\u3002\u6f22\u5b57\u3001\u3072\u3089\u304c\u306a\u3001\u30ab\u30bf\u30ab\u30ca\u3001and English\u3002")
add("ja-halfwidth", "\uff76\uff80\uff76\uff85 \uff8a\uff9e\uff9d\uff7a\uff9e")
add("ko-hangul", "\uc548\ub155\ud558\uc138\uc694, \uc138\uacc4! \ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4.")
add("ko-jamo", "\u1100\u1161\u11a8 \u3131\u314f")
# --- emoji
add("emoji-simple", "I love it \U0001F600\U0001F602\U0001F44D!")
add("emoji-skin", "\U0001F44D\U0001F3FD \U0001F44B\U0001F3FF")
add("emoji-zwj-family", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 family")
add("emoji-zwj-misc", "\U0001F469\u200d\U0001F4BB \U0001F3F3\ufe0f\u200d\U0001F308 \U0001F9D1\U0001F3FD\u200d\U0001F680")
add("emoji-flags", "\U0001F1FA\U0001F1F8\U0001F1EF\U0001F1F5\U0001F1E8\U0001F1F3")
add("emoji-keycap", "1\ufe0f\u20e3 #\ufe0f\u20e3 *\ufe0f\u20e3")
add("emoji-vs16", "\u2764\ufe0f \u2764 \u263a\ufe0f \u2601\ufe0f")
add("emoji-run", "\U0001F525" * 7 + "\U0001F389\U0001F38A")
add("emoji-text-mix", "Great job\U0001F44F\U0001F44Fwell done!\U0001F60Ebye")
# --- combining marks / scripts
add("comb-e-acute", "e\u0301 cafe\u0301 caf\u00e9")
add("comb-stack", "a\u0300\u0301\u0302\u0303\u0304 o\u0308\u0323")
add("comb-zalgo", "Z\u0351\u036b\u0343a\u0310\u0364l\u0352\u0357g\u0311\u0302o\u0300\u0301")
add("comb-alone", "\u0301\u0302 \u0301x")
add("hebrew-niqqud", "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd \u05e2\u05d5\u05dc\u05dd")
add("devanagari", "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e\u0964 \u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e")
add("thai", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22")
add("tamil", "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd \u0b89\u0bb2\u0b95\u0bae\u0bcd")
add("arabic", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645\u061f \u0647\u0630\u0627 \u0627\u062e\u062a\u0628\u0627\u0631\u060c \u0634\u0643\u0631\u0627\u064b.")
add("arabic-tashkeel", "\u0645\u064e\u0631\u0652\u062d\u064e\u0628\u064b\u0627 \u0627\u0644\u0652\u0639\u064e\u0627\u0644\u064e\u0645\u0650")
add("arabic-mixed-dir", "The word \u0643\u062a\u0627\u0628 means book (\u0643\u062a\u0628 plural) 123.")
add("persian", "\u0633\u0644\u0627\u0645 \u062f\u0646\u06cc\u0627\u06cc \u0639\u0632\u06cc\u0632\u200c\u0645")
add("cyrillic", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u042d\u0442\u043e \u0442\u0435\u0441\u0442\u043e\u0432\u0430\u044f \u0441\u0442\u0440\u043e\u043a\u0430.")
add("cyrillic-ukr", "\u0490\u0430\u043d\u043e\u043a \u0457\u0436\u0430\u043a \u0404\u0432\u0440\u043e\u043f\u0430 \u0406\u0432\u0430\u043d")
add("greek", "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5! \u0391\u0392\u0393 \u03b1\u03b2\u03b3")
add("latin-ext", "F\u00fchrer na\u00efve \u00c5ngstr\u00f6m \u0141\u00f3d\u017a \u010ce\u0161tina \u00df \u1e9e \u0153uvre \u00e6sir")
add("armenian-georgian", "\u0532\u0561\u0580\u0565\u0582 \u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0")
add("ethiopic-khmer", "\u1230\u120b\u121d \u179f\u17bd\u179f\u17d2\u178f\u17b8")
add("math-symbols", "\u2200x\u2208\u211d: x\u00b2\u22650 \u2211\u222b\u221e \u2248 \u2260 \u00b1 \u00d7 \u00f7 \u221a2 \u2192 \u21d2 \u2234")
add("currency", "\u20ac100 \u00a350 \u00a51000 \u20b9500 \u20bf0.1 $5 \u00a2")
add("letterlike", "\u2126 \u212a \u212b \u2102 \u2115 \u2124 \u2119 \u211a \ufb01 \ufb02")
add("supplementary-letters", "\U0001D400\U0001D401\U0001D402 \U00010400\U00010428 \U0001E900")
# --- whitespace
add("ws-multi", "a  b   c    d")
add("ws-leading-trailing", "   leading and trailing   ")
add("ws-tabs", "\tone\t\ttwo\t\t\tthree\t")
add("ws-newlines", "line1\nline2\n\nline3\n\n\n")
add("ws-crlf", "a\r\nb\r\n\r\nc\r")
add("ws-mixed", " \t \n \r\n\t\t \n  x  \n\t y")
add("ws-only-newlines", "\n\n\n\n")
add("ws-space-before-newline", "end   \nnext\t\n")
add("ws-unicode", "a\u00a0b\u2003c\u3000d\u2009e\u202ff\u205fg\u1680h")
add("ws-vt-ff", "a\x0bb\x0cc")
add("ws-line-sep", "a\u2028b\u2029c")
add("ws-punct-newline", "Hello!\n\nWorld?\r\n(ok)\n")
add("ws-indented-code", "    return x\n\n        y\n")
# --- control characters
add("ctrl-nul", "a\x00b")
add("ctrl-misc", "\x01\x02\x03 \x1b[31mred\x1b[0m \x7f")
add("ctrl-zwsp-bidi", "a\u200bb\u200cc\u200dd\u200ee\u200ff\u202ag\u2066h")
add("ctrl-soft-hyphen", "co\u00adop\u00ad")
add("private-use", "\ue000\uf8ff \U000F0000")
add("noncharacter-ish", "\ufffd \ufffc")
# --- special / added tokens in context
add("sp-chat", "<\uff5cbegin\u2581of\u2581sentence\uff5c>You are helpful.<\uff5cUser\uff5c>Hi there<\uff5cAssistant\uff5c><think>\nLet me think.\n</think>\n\nHello!<\uff5cend\u2581of\u2581sentence\uff5c>")
add("sp-spaces-around", " <\uff5cUser\uff5c> hi <\uff5cAssistant\uff5c> ")
add("sp-adjacent", "<\uff5cUser\uff5c><\uff5cUser\uff5c><|EOT|><|EOT|>")
add("sp-partial", "<\uff5cUser <|EOT| <\uff5cUser\uff5c <\uff5cuser\uff5c> <|User|> <<\uff5cUser\uff5c>> <\uff5c\uff5c>")
add("sp-fim", "<\uff5cfim\u2581begin\uff5c>def f():\n<\uff5cfim\u2581hole\uff5c>\n    return 1<\uff5cfim\u2581end\uff5c>")
add("sp-tools", "<\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581call\u2581begin\uff5c>function<\uff5ctool\u2581sep\uff5c>get_weather\n```json\n{\"city\": \"Paris\"}\n```<\uff5ctool\u2581call\u2581end\uff5c><\uff5ctool\u2581calls\u2581end\uff5c><\uff5ctool\u2581outputs\u2581begin\uff5c><\uff5ctool\u2581output\u2581begin\uff5c>{\"t\": 21}<\uff5ctool\u2581output\u2581end\uff5c><\uff5ctool\u2581outputs\u2581end\uff5c>")
add("sp-pad", "x<\uff5c\u2581pad\u2581\uff5c>y")
add("sp-in-word", "abc<\uff5cend\u2581of\u2581sentence\uff5c>def")
# every added token, alone
tj = json.load(open(os.path.join(SHARED, "fixtures/tokenizers/deepseek-v3/tokenizer.json"), encoding="utf-8"))
at = tj["added_tokens"]
for a in at:
    if "place\u2581holder" in a["content"]:
        continue
    add("sp-token-%d" % a["id"], a["content"])
# all 800 placeholders in one text, separated by words
ph = [a["content"] for a in at if "place\u2581holder" in a["content"]]
assert len(ph) == 800
add("sp-placeholders-all", " x".join(ph))
add("sp-placeholder-prefix", "<\uff5cplace\u2581holder\u2581no\u2581") # truncated
# long / stress
add("long-letters", "a" * 3000)
add("long-word-mix", "supercalifragilisticexpialidocious" * 40)
add("long-spaces", " " * 500 + "x" + " " * 500)
add("long-newlines-spaces", " \n" * 300)
add("long-punct", "!?" * 400)
add("long-cjk", "\u6df1\u5ea6\u6c42\u7d22" * 200)
add("long-emoji", "\U0001F600" * 300)

# ---- pseudo-random strings
assert unicodedata.unidata_version == "14.0.0", unicodedata.unidata_version
random.seed(20241128)
pools = [
    (30, lambda: chr(random.randint(0x20, 0x7e))),
    (6, lambda: random.choice(" \t\n\r\n  \x0b\x0c")),
    (5, lambda: random.choice("~!@#$%^&*()_+-=[]{}|;:'\",.<>/?`\\")),
    (5, lambda: chr(random.randint(0x30, 0x39))),
    (6, lambda: chr(random.randint(0xa0, 0x24f))),
    (4, lambda: chr(random.randint(0x370, 0x52f))),
    (8, lambda: chr(random.randint(0x4e00, 0x9fff))),
    (4, lambda: chr(random.randint(0x3000, 0x30ff))),
    (3, lambda: chr(random.randint(0xac00, 0xd7a3))),
    (4, lambda: chr(random.randint(0x1f300, 0x1faff))),
    (3, lambda: chr(random.randint(0x300, 0x36f))),
    (3, lambda: chr(random.randint(0x2000, 0x2bff))),
    (3, lambda: chr(random.randint(0x600, 0x6ff))),
    (3, lambda: chr(random.randint(0x900, 0xdff))),
    (2, lambda: chr(random.randint(0xff00, 0xffef))),
    (2, lambda: chr(random.randint(0x10000, 0x2ffff))),
    (2, lambda: chr(random.randint(0x0, 0x1f))),
    (1, lambda: random.choice(["<\uff5cUser\uff5c>", "<|EOT|>", "<\uff5cAssistant\uff5c>",
                               "<\uff5cend\u2581of\u2581sentence\uff5c>", "'s", "'ll", "'S", " '"])),
    (2, lambda: chr(random.randint(0x80, 0x10ffff))),
]
total = sum(w for w, _ in pools)


def rand_char():
    r = random.uniform(0, total)
    for w, f in pools:
        if r < w:
            return f()
        r -= w
    return "x"


for i in range(300):
    n = random.choice([1, 2, 3, 5, 8, 13, 30, 80, 200])
    s = "".join(rand_char() for _ in range(n))
    s = "".join(c for c in s if not (0xd800 <= ord(c) <= 0xdfff) and c not in "\u0085\ufeff\x00"
                and unicodedata.category(c) != "Cn")
    add("rand-%d" % i, s)

with open(OUT, "w") as f:
    json.dump(C, f, ensure_ascii=True, indent=1)
print("wrote %d cases to %s" % (len(C), OUT))
