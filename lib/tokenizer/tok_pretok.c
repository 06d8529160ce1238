/*
 * lib/tokenizer/tok_pretok.c — pre-tokenizers: sequences of regex splits (formats.md §5.4, §5.7).
 *
 * Owns: the exact regexes of the known pre-tokenizers (deepseek-llm, deepseek-coder, deepseek-v3,
 * qwen2, llama-bpe, llama.cpp's "default"), recognising them in a tokenizer.json, translating
 * Hugging Face (Oniguruma) regex syntax to PCRE2, compiling, and splitting text.
 *
 * Why PCRE2. The reference tokenizers run these patterns through backtracking engines with
 * Perl-style leftmost-first alternation and greedy quantifiers (Oniguruma in HF `tokenizers`,
 * std::regex in llama.cpp). PCRE2 has exactly those semantics, plus what the patterns need:
 * Unicode general-category properties (\p{L} \p{N} \p{P} \p{S} \p{M}) on code points (incl.
 * supplementary planes), negative lookahead, a JIT compiler for speed (with an interpreter
 * fallback), and a mode that makes invalid UTF-8 harmless (PCRE2_MATCH_INVALID_UTF). Hand-written
 * matchers per pattern would have to re-derive every alternation and lookahead interaction;
 * running the published pattern text through a real engine keeps us byte-identical to the
 * sources and lets tokenizer.json files with other Split regexes work too ("custom").
 *
 * Semantic details handled here:
 *   - `\s` / `\S` are rewritten to the explicit Unicode White_Space set (U+0009–000D, 0020,
 *     0085, 00A0, 1680, 2000–200A, 2028, 2029, 202F, 205F, 3000), which is what Oniguruma,
 *     Rust regex and llama.cpp use. PCRE2's own \s (even with PCRE2_UCP) omits U+0085.
 *   - `$` is end of piece (PCRE2_DOLLAR_ENDONLY); each piece is matched as its own subject, so
 *     lookahead/lookbehind never see text outside the piece (as in HF and llama.cpp).
 *   - ASCII `~` is \p{S} (Unicode, HF); llama.cpp's quirk of omitting it is NOT reproduced.
 *   - qwen2/llama-bpe use llama.cpp's spelled-out `'[sS]|'[tT]...` instead of `(?i:...)` (no
 *     Unicode case folding of `ſ`/`K` into the contraction group).
 *   - deepseek-llm's `\s+$` runs as the equivalent `(?<!\s)\s++$`, which is linear on long
 *     whitespace runs (the literal form retries the run from every start: quadratic).
 *   - Empty matches are ignored. Pieces tile the input; gaps become pieces (Isolated).
 *   - Invalid UTF-8 never reaches the regexes: tok_bpe.c splits every maximal run of invalid
 *     bytes off as a piece of its own first, so subjects are valid UTF-8 and are matched with
 *     PCRE2_NO_UTF_CHECK (the interpreter would otherwise re-check the rest of the subject on
 *     every call: quadratic). The JIT-compiled patterns additionally carry
 *     PCRE2_MATCH_INVALID_UTF as defence in depth (free for JIT; it disables NO_UTF_CHECK in the
 *     interpreter, so interpreter-only patterns are compiled without it).
 *   - Safety net: every match has a match limit. If a (custom) pattern hits it, the rest of the
 *     piece is passed on unsplit — deterministic, lossless, never a hang. The built-in patterns
 *     are linear-time and do not hit it on any input we know of.
 *   - Character categories come from the PCRE2 library's Unicode tables (Debian 12: PCRE2 10.42,
 *     Unicode 14). Characters assigned after that version (e.g. Unicode 15's Kawi) are
 *     unassigned for us and may split differently from references with newer tables.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------
 * Presets. Patterns are in Hugging Face syntax (C escapes give CR/LF, `\\x{...}` are regex
 * escapes). `exec` overrides the pattern actually compiled when it differs (same meaning).
 * The deepseek-llm letter class is written with \x{} escapes on purpose: its literal form
 * contains compatibility code points that NFC normalisation silently corrupts.
 * --------------------------------------------------------------------------------------- */

typedef struct preset_def {
    const char *name;
    int n;
    const char *pat[6];
    const char *exec[6];      /* NULL = same as pat */
    bool ignore_merges;
} preset_def;

#define WS_RUN_TRAILING "(?<!\\s)\\s++$"

#define QWEN_CONTRACTIONS_HF "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
#define QWEN_CONTRACTIONS_CPP "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define QWEN_TAIL "| ?[^\\s\\p{L}\\p{N}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"

static const preset_def PRESETS[] = {
    {
        "deepseek-llm", 6,
        {
            "[\r\n]",
            "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4"
            "}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x"
            "{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A"
            "}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{"
            "1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D"
            "9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}"
            "-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x"
            "{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1F"
            "DB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-"
            "\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{2"
            "12F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
            "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x"
            "{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB"
            "70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A"
            "}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x"
            "{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
            "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
            "\\s+$",
            "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
            "\\p{N}+",
        },
        { NULL, NULL, NULL, WS_RUN_TRAILING, NULL, NULL },
        false,
    },
    {
        "deepseek-coder", 5,
        {
            "[\r\n]",
            "\\s?\\p{L}+",
            "\\s?\\p{P}+",
            "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
            "\\p{N}",
        },
        { NULL },
        false,
    },
    {
        "deepseek-v3", 3,
        {
            "\\p{N}{1,3}",
            "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
            "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
            "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
        },
        { NULL },
        false,
    },
    {
        "qwen2", 1,
        { QWEN_CONTRACTIONS_HF "|[^\r\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" QWEN_TAIL },
        { QWEN_CONTRACTIONS_CPP "|[^\r\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" QWEN_TAIL },
        false,
    },
    {
        "llama-bpe", 1,
        { QWEN_CONTRACTIONS_HF "|[^\r\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}" QWEN_TAIL },
        { QWEN_CONTRACTIONS_CPP "|[^\r\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}" QWEN_TAIL },
        true,
    },
    {
        /* llama.cpp's list for a GGUF without tokenizer.ggml.pre */
        "default", 4,
        {
            "[\\p{P}\\$\\+<=>\\^~\\|]+",
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
            "\\p{N}+",
            "[0-9][0-9][0-9]",
        },
        { NULL },
        false,
    },
    {
        /* GPT-2 ByteLevel(use_regex=true) */
        "gpt2", 1,
        { "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+" },
        { NULL },
        false,
    },
};

#define N_PRESETS ((int)(sizeof PRESETS / sizeof PRESETS[0]))

static const struct { const char *alias; const char *name; } ALIASES[] = {
    { "deepseek-r1-qwen", "qwen2" },
    { "stablelm2", "qwen2" },
    { "megrez", "qwen2" },
    { "llama3", "llama-bpe" },
    { "llama-v3", "llama-bpe" },
    { "gpt-2", "gpt2" },
};

int tok_pretok_find_preset(const char *name)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < sizeof ALIASES / sizeof ALIASES[0]; i++)
        if (strcmp(name, ALIASES[i].alias) == 0)
            name = ALIASES[i].name;
    for (int i = 0; i < N_PRESETS; i++)
        if (strcmp(name, PRESETS[i].name) == 0)
            return i;
    return -1;
}

const char *tok_pretok_preset_name(int preset)
{
    return (preset >= 0 && preset < N_PRESETS) ? PRESETS[preset].name : "custom";
}

bool tok_pretok_preset_ignore_merges(int preset)
{
    return preset >= 0 && preset < N_PRESETS && PRESETS[preset].ignore_merges;
}

/* ---------------------------------------------------------------------------------------
 * Canonical form for comparing patterns: `\x{H}`, `\r`, `\n`, `\t` become the literal
 * characters (UTF-8); every other escape pair is kept verbatim.
 * --------------------------------------------------------------------------------------- */

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

static char *canonical(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n * 2 + 8);   /* \x{H...} (>= 5 chars) expands to <= 4 bytes */
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '\\' && i + 1 < n) {
            char c = s[i + 1];
            if (c == 'x' && i + 2 < n && s[i + 2] == '{') {
                size_t k = i + 3;
                uint32_t cp = 0;
                int digits = 0;
                while (k < n && digits < 8) {
                    char h = s[k];
                    int v = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                          : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                    if (v < 0)
                        break;
                    cp = cp * 16 + (uint32_t)v;
                    digits++;
                    k++;
                }
                if (digits > 0 && k < n && s[k] == '}' && cp <= 0x10FFFF) {
                    j += put_utf8(o + j, cp);
                    i = k + 1;
                    continue;
                }
            } else if (c == 'r' || c == 'n' || c == 't') {
                o[j++] = c == 'r' ? '\r' : c == 'n' ? '\n' : '\t';
                i += 2;
                continue;
            }
            o[j++] = s[i];
            o[j++] = c;
            i += 2;
            continue;
        }
        o[j++] = s[i++];
    }
    o[j] = 0;
    return o;
}

static bool same_pattern(const char *a, const char *b)
{
    char *ca = canonical(a), *cb = canonical(b);
    bool eq = ca && cb && strcmp(ca, cb) == 0;
    free(ca);
    free(cb);
    return eq;
}

int tok_pretok_identify(const char *const *patterns, int n)
{
    for (int p = 0; p < N_PRESETS; p++) {
        const preset_def *ps = &PRESETS[p];
        if (ps->n != n)
            continue;
        bool all = true;
        for (int i = 0; i < n && all; i++)
            all = same_pattern(patterns[i], ps->pat[i]) ||
                  (ps->exec[i] && same_pattern(patterns[i], ps->exec[i]));
        if (all)
            return p;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------
 * HF -> PCRE2 translation: `\s`, `\S` -> explicit White_Space classes.
 * --------------------------------------------------------------------------------------- */

#define WS_BODY "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}" \
                "\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

static ds_status translate(const char *in, char **out, ds_err *err)
{
    size_t n = strlen(in);
    size_t cap = n * (sizeof WS_BODY + 4) + 1;
    char *o = malloc(cap);
    if (!o)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "pre-tokenizer: out of memory");
    size_t j = 0;
    bool in_class = false;
    size_t class_start = 0; /* index in `in` of the first member position */
    for (size_t i = 0; i < n;) {
        char c = in[i];
        if (c == '\\' && i + 1 < n) {
            char e = in[i + 1];
            if (e == 's') {
                if (in_class) {
                    memcpy(o + j, WS_BODY, sizeof WS_BODY - 1);
                    j += sizeof WS_BODY - 1;
                } else {
                    o[j++] = '[';
                    memcpy(o + j, WS_BODY, sizeof WS_BODY - 1);
                    j += sizeof WS_BODY - 1;
                    o[j++] = ']';
                }
                i += 2;
                continue;
            }
            if (e == 'S') {
                if (in_class) {
                    free(o);
                    return ds_err_set(err, DS_ERR_UNSUPPORTED,
                                      "pre-tokenizer regex: \\S inside a character class is not supported: %.200s", in);
                }
                o[j++] = '[';
                o[j++] = '^';
                memcpy(o + j, WS_BODY, sizeof WS_BODY - 1);
                j += sizeof WS_BODY - 1;
                o[j++] = ']';
                i += 2;
                continue;
            }
            o[j++] = c;
            o[j++] = e;
            i += 2;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            o[j++] = c;
            i++;
            if (i < n && in[i] == '^')
                o[j++] = in[i++];
            class_start = i;
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && in[i + 1] == ':') {
            /* POSIX class [:name:] — copy through the closing ":]" */
            const char *end = strstr(in + i + 2, ":]");
            if (end) {
                size_t l = (size_t)(end + 2 - (in + i));
                memcpy(o + j, in + i, l);
                j += l;
                i += l;
                continue;
            }
        }
        if (in_class && c == ']' && i != class_start)
            in_class = false;
        o[j++] = c;
        i++;
    }
    o[j] = 0;
    *out = o;
    return DS_OK;
}

/* --------------------------------------------------------------------------------------- */

void tok_pretok_free(tok_pretok *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_steps; i++)
        pcre2_code_free((pcre2_code *)p->re[i]);
    pcre2_match_context_free((pcre2_match_context *)p->mctx);
    free(p->name);
    memset(p, 0, sizeof *p);
}

#define TOK_MATCH_LIMIT 100000000u

ds_status tok_pretok_compile(tok_pretok *p, int preset, const char *const *patterns, int n,
                             const char *name, ds_err *err)
{
    memset(p, 0, sizeof *p);
    const char *const *pats = patterns;
    const char *exec_buf[TOK_MAX_PRE_STEPS];
    if (preset >= 0) {
        if (preset >= N_PRESETS)
            return ds_err_set(err, DS_ERR_INTERNAL, "pre-tokenizer: bad preset %d", preset);
        n = PRESETS[preset].n;
        for (int i = 0; i < n; i++)
            exec_buf[i] = PRESETS[preset].exec[i] ? PRESETS[preset].exec[i] : PRESETS[preset].pat[i];
        pats = exec_buf;
    }
    if (n < 0 || n > TOK_MAX_PRE_STEPS)
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "pre-tokenizer: %d regex steps (at most %d supported)",
                          n, TOK_MAX_PRE_STEPS);
    p->name = strdup(name ? name : tok_pretok_preset_name(preset));
    p->mctx = pcre2_match_context_create(NULL);
    if (!p->name || !p->mctx) {
        tok_pretok_free(p);
        return ds_err_set(err, DS_ERR_NO_MEMORY, "pre-tokenizer: out of memory");
    }
    pcre2_set_match_limit((pcre2_match_context *)p->mctx, TOK_MATCH_LIMIT);
    pcre2_set_depth_limit((pcre2_match_context *)p->mctx, TOK_MATCH_LIMIT);

    const uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY;
    for (int i = 0; i < n; i++) {
        char *tr = NULL;
        ds_status st = translate(pats[i], &tr, err);
        if (st != DS_OK) {
            tok_pretok_free(p);
            return st;
        }
        int ec = 0;
        PCRE2_SIZE eo = 0;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)tr, PCRE2_ZERO_TERMINATED, opts | PCRE2_MATCH_INVALID_UTF, &ec, &eo,
                                       NULL);
        bool jit = false;
#ifndef TOK_FORCE_NO_JIT /* test hook: exercise the interpreter fallback */
        jit = re && pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
#endif
        if (re && !jit) {
            pcre2_code_free(re);
            re = pcre2_compile((PCRE2_SPTR)tr, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, NULL);
        }
        free(tr);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            p->n_steps = i;
            tok_pretok_free(p);
            return ds_err_set(err, DS_ERR_UNSUPPORTED,
                              "pre-tokenizer regex %d does not compile (%s at offset %zu): %.200s",
                              i, (const char *)msg, (size_t)eo, pats[i]);
        }
        p->re[i] = re;
        p->jit[i] = jit;
        p->n_steps = i + 1;
    }
    return DS_OK;
}

ds_status tok_matcher_init(tok_matcher *m)
{
    m->valid_utf = false;
    m->md = pcre2_match_data_create(1, NULL);
    return m->md ? DS_OK : DS_ERR_NO_MEMORY;
}

void tok_matcher_free(tok_matcher *m)
{
    if (m && m->md) {
        pcre2_match_data_free((pcre2_match_data *)m->md);
        m->md = NULL;
    }
}

/* One match of step `step` in subject s[0..len) from `start`. Returns 1 and the span, 0 for no
 * match, -1 when the engine gave up (match limit) — the caller treats the rest as a gap. */
static int match_one(const tok_pretok *p, tok_matcher *m, int step, const char *s, size_t len,
                     size_t start, size_t *ms, size_t *me)
{
    const pcre2_code *re = (const pcre2_code *)p->re[step];
    pcre2_match_data *md = (pcre2_match_data *)m->md;
    pcre2_match_context *mc = (pcre2_match_context *)p->mctx;
    int rc;
    if (p->jit[step]) {
        rc = pcre2_jit_match(re, (PCRE2_SPTR)s, len, start, 0, md, mc);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re, (PCRE2_SPTR)s, len, start, PCRE2_NO_JIT | PCRE2_NO_UTF_CHECK, md, mc);
    } else {
        /* the subject is valid UTF-8 (tok_bpe.c splits invalid runs off first), so the
         * interpreter's per-call UTF check (linear in the subject) is skipped */
        rc = pcre2_match(re, (PCRE2_SPTR)s, len, start, PCRE2_NO_UTF_CHECK, md, mc);
    }
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0)
        return -1;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (ov[0] > ov[1] || ov[1] > len || ov[0] < start)
        return -1; /* \K tricks in custom patterns: treat as failure */
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

static size_t char_len_at(const char *s, size_t len, size_t i)
{
    uint32_t cp;
    size_t l = tok_utf8_decode((const uint8_t *)s + i, len - i, &cp);
    return l ? l : 1;
}

static int split_rec(const tok_pretok *p, tok_matcher *m, int step, const char *text, size_t off,
                     size_t len, tok_piece_fn fn, void *user)
{
    if (len == 0)
        return 0;
    if (step >= p->n_steps)
        return fn(user, off, len);
    const char *s = text + off;
    size_t gap = 0, pos = 0;
    int r;
    while (pos < len) {
        size_t ms, me;
        int mr = match_one(p, m, step, s, len, pos, &ms, &me);
        if (mr <= 0)
            break;
        if (me == ms) { /* empty match: ignored */
            pos = ms + char_len_at(s, len, ms);
            continue;
        }
        if (ms > gap && (r = split_rec(p, m, step + 1, text, off + gap, ms - gap, fn, user)) != 0)
            return r;
        if ((r = split_rec(p, m, step + 1, text, off + ms, me - ms, fn, user)) != 0)
            return r;
        gap = pos = me;
    }
    if (gap < len)
        return split_rec(p, m, step + 1, text, off + gap, len - gap, fn, user);
    return 0;
}

int tok_pretok_split(const tok_pretok *p, tok_matcher *m, const char *text, size_t len,
                     tok_piece_fn fn, void *user)
{
    return split_rec(p, m, 0, text, 0, len, fn, user);
}
