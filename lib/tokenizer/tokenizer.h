/*
 * lib/tokenizer/tokenizer.h — internal tokenizer interface.
 *
 * Owns: building a ds_tokenizer from a parsed GGUF file (for ds_model_open) and freeing it.
 * The public API is include/deepseek/tokenizer.h. Everything below the "private" line is shared
 * only by lib/tokenizer/tok_*.c (the implementation files of this module); other modules use
 * only the two functions in the first section and the public API.
 *
 * Reference: shared/docs/formats.md §5, §6.1; shared/docs/deepseek-architectures.md §6.4.
 */
#ifndef DS_TOKENIZER_TOKENIZER_H
#define DS_TOKENIZER_TOKENIZER_H

#include "deepseek/tokenizer.h"
#include "format/gguf.h"
#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Build a tokenizer from the tokenizer.* metadata of a parsed GGUF file.
 * Everything the tokenizer keeps is copied: it holds no pointer into `f` or its buffer after
 * returning, so the caller may free/unmap them at any time.
 * Status: DS_OK; DS_ERR_NOT_FOUND (no tokenizer.ggml.model key: the file has no tokenizer);
 * DS_ERR_UNSUPPORTED (tokenizer.ggml.model is not "gpt2", or an unknown tokenizer.ggml.pre);
 * DS_ERR_FORMAT (a key has the wrong type, arrays disagree in length, an id is out of range);
 * DS_ERR_NO_MEMORY. `*out` is NULL on failure and `err` names the key. */
ds_status ds_tokenizer_from_gguf(ds_tokenizer **out, const gguf_file *f, ds_err *err);

/* Free a tokenizer (from ds_tokenizer_from_gguf or ds_tokenizer_open). Accepts NULL. */
void ds_tokenizer_free(ds_tokenizer *tok);

/* ========================================================================================
 * private to lib/tokenizer/tok_*.c
 * ======================================================================================== */

#define TOK_MAX_PRE_STEPS 8

/* A compiled pre-tokenizer: a sequence of Split(Isolated) regexes (formats.md §5.4). */
typedef struct tok_pretok {
    char *name;                           /* "deepseek-v3", ..., "custom" (owned) */
    int n_steps;
    void *re[TOK_MAX_PRE_STEPS];          /* pcre2_code_8* */
    bool jit[TOK_MAX_PRE_STEPS];          /* JIT-compiled successfully */
    void *mctx;                           /* pcre2_match_context_8*: match limit (read-only) */
} tok_pretok;

/* One BPE merge: (left id, right id) -> (rank, merged id). Open addressing, key 0 = empty. */
typedef struct tok_merge_slot {
    uint64_t key;                         /* ((uint64_t)(left+1) << 32) | (uint32_t)(right+1) */
    uint32_t rank;
    int32_t id;
} tok_merge_slot;

/* A trie over the byte strings of added tokens (USER_DEFINED, CONTROL, UNUSED, UNKNOWN). */
typedef struct tok_trie_edge {
    uint32_t key;                         /* (node << 8 | byte) + 1; 0 = empty slot */
    uint32_t child;
} tok_trie_edge;

enum {
    TOKF_EOG = 1u << 0,                   /* end of generation */
    TOKF_LSTRIP = 1u << 1,                /* added token absorbs whitespace on its left */
    TOKF_RSTRIP = 1u << 2                 /* ... and on its right */
};

struct ds_tokenizer {
    int32_t n_vocab;
    /* token texts: text_arena + text_off[i], NUL-terminated, length text_off[i+1]-text_off[i]-1 */
    char *text_arena;
    uint32_t *text_off;                   /* n_vocab + 1 */
    /* pieces (bytes after decoding, literal text for added tokens): [piece_off[i], piece_off[i+1]) */
    char *piece_arena;
    uint32_t *piece_off;                  /* n_vocab + 1 */
    uint8_t *type;                        /* ds_token_type per id */
    uint8_t *tflags;                      /* TOKF_* per id */

    uint32_t *str_index;                  /* text -> id+1, open addressing */
    uint32_t str_mask;
    uint32_t *piece_index;                /* NORMAL piece bytes -> id+1 (for ignore_merges) */
    uint32_t piece_mask;

    int32_t byte_id[256];                 /* id of the single-byte symbol, -1 if absent */

    tok_merge_slot *merges;
    uint64_t merge_mask;
    uint32_t n_merges;

    /* added-token trie: node 0 is the root; node_tok[n] = terminal token id or -1 */
    int32_t *node_tok;
    uint32_t n_nodes;
    tok_trie_edge *edges;
    uint32_t edge_mask;
    uint8_t first_any[32];                /* bitmap: bytes that start any added token */
    uint8_t first_user[32];               /* bitmap: bytes that start an always-matched token */

    int32_t bos, eos, pad;
    bool add_bos;
    bool ignore_merges;

    char *chat_template;                  /* owned or NULL */
    tok_pretok pre;
};

/* ---- construction (tok_build.c) ---- */

/* A tokenizer under construction: the loaders fill these, then tok_build_finish() builds the
 * indexes. Strings are copied into the builder. */
typedef struct tok_builder {
    int32_t n_vocab;
    /* all strings live in one arena (NUL-terminated), addressed by offset */
    char *arena;
    size_t arena_len, arena_cap;
    uint64_t *text_at;                    /* n_vocab: arena offset + 1 of the text; 0 = none */
    uint32_t *text_len;
    uint8_t *type;
    uint8_t *tflags;
    /* merges in rank order: arena offset of "left\0right\0" */
    uint64_t *merge_at;
    uint32_t *merge_left_len, *merge_right_len;
    size_t n_merges, cap_merges;
    int32_t bos, eos, pad, eot, eom;
    bool add_bos;
    bool ignore_merges;
    bool last_wins;                       /* duplicate texts: last id wins (llama.cpp) */
    char *chat_template;
    char *pre_name;                       /* name reported by ds_tokenizer_pre_name (owned) */
    int pre_preset;                       /* preset index, or -1: compile pre_custom */
    char *pre_custom[TOK_MAX_PRE_STEPS];  /* owned custom patterns (tokenizer.json) */
    int n_pre_custom;
} tok_builder;

ds_status tok_builder_init(tok_builder *b, int32_t n_vocab, ds_err *err);
void tok_builder_free(tok_builder *b);
ds_status tok_builder_set_text(tok_builder *b, int32_t id, const char *s, size_t len, ds_err *err);
ds_status tok_builder_add_merge(tok_builder *b, const char *l, size_t ll, const char *r, size_t rl,
                                ds_err *err);
/* Consumes the builder (freed in every case). */
ds_status tok_build_finish(tok_builder *b, ds_tokenizer **out, ds_err *err);

/* Lookups on a finished tokenizer (tok_build.c). */
int32_t tok_str_lookup(const ds_tokenizer *t, const char *s, size_t len);   /* text -> id, -1 */
uint32_t tok_trie_child(const ds_tokenizer *t, uint32_t node, uint8_t byte); /* 0 = none */

/* ---- loaders ---- */
ds_status tok_load_json(const char *path, ds_tokenizer **out, ds_err *err);   /* tok_json.c */

/* ---- pre-tokenizer (tok_pretok.c) ---- */

/* Known presets by name (GGUF tokenizer.ggml.pre, aliases included). Returns the canonical
 * preset index or -1. */
int tok_pretok_find_preset(const char *name);
/* Identify a tokenizer.json Split-regex sequence; returns a preset index or -1. */
int tok_pretok_identify(const char *const *patterns, int n);
const char *tok_pretok_preset_name(int preset);
bool tok_pretok_preset_ignore_merges(int preset);
/* Compile a preset, or (preset < 0) the given HF-syntax patterns. `name` is copied. */
ds_status tok_pretok_compile(tok_pretok *p, int preset, const char *const *patterns, int n,
                             const char *name, ds_err *err);
void tok_pretok_free(tok_pretok *p);

/* Split callback: one final piece [off, off+len) of the subject. Non-zero return aborts. */
typedef int (*tok_piece_fn)(void *user, size_t off, size_t len);
/* Per-call matcher state (match data); not shareable between threads. */
typedef struct tok_matcher {
    void *md;                             /* pcre2_match_data_8* */
    bool valid_utf;                       /* the whole text of the call is valid UTF-8 */
} tok_matcher;
ds_status tok_matcher_init(tok_matcher *m);
void tok_matcher_free(tok_matcher *m);
/* Run the pre-tokenizer on text[0..len) (valid UTF-8: a fragment between added tokens and
 * invalid-byte runs), calling fn for every final piece in order. The pieces tile the fragment
 * exactly. Returns fn's non-zero value, or 0. */
int tok_pretok_split(const tok_pretok *p, tok_matcher *m, const char *text, size_t len,
                     tok_piece_fn fn, void *user);

/* ---- byte-level table (tok_build.c) ---- */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);          /* -1 if the code point is not in the table */
/* Decode one UTF-8 sequence at s[0..n); returns its length (1..4) and the code point, or 0 and
 * *cp = 0xFFFFFFFF if s starts with an invalid sequence (length-1 invalid prefix). */
size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
bool tok_utf8_valid(const uint8_t *s, size_t n);

uint64_t tok_hash_bytes(const void *data, size_t len);

#endif
