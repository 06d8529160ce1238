/*
 * tests/tokenizer/test_tok_fixtures.c — token-for-token equality with llama.cpp's
 * test-tokenizer-0 fixtures for the deepseek-llm and deepseek-coder GGUF vocabularies.
 *
 * Files (read at test time, never copied into the repository):
 *   $DS_SHARED_DIR/fixtures/tokenizers/<vocab>/ggml-vocab-<vocab>.gguf{,.inp,.out}
 * .inp: test strings, each followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per
 * string. Tokenized as llama.cpp's test does: no BOS, special tokens not parsed.
 * Also checked: detokenize(expected ids) == the input string.
 * If the fixture directory is absent the tests print SKIPPED and are skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deepseek/tokenizer.h"
#include "tok_test_util.h"

static bool g_skipped_all = true;

static void run_vocab(const char *vocab)
{
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/tokenizers/%s/ggml-vocab-%s.gguf", vocab, vocab);
    char *gguf = tt_path(tt_shared_dir(), rel);
    assert_non_null(gguf);
    if (!tt_exists(gguf)) {
        printf("SKIPPED: fixture %s not found (set DS_SHARED_DIR)\n", gguf);
        free(gguf);
        skip();
        return;
    }
    g_skipped_all = false;
    size_t pl = strlen(gguf) + 8;
    char *inp_path = malloc(pl), *out_path = malloc(pl);
    snprintf(inp_path, pl, "%s.inp", gguf);
    snprintf(out_path, pl, "%s.out", gguf);
    size_t in_len = 0, out_len = 0;
    char *in = tt_slurp(inp_path, &in_len), *out = tt_slurp(out_path, &out_len);
    assert_non_null(in);
    assert_non_null(out);

    ds_tokenizer *tok = NULL;
    ds_status st = ds_tokenizer_open(&tok, gguf);
    if (st != DS_OK)
        fail_msg("open %s: %s", gguf, ds_last_error());
    assert_string_equal(ds_tokenizer_pre_name(tok), vocab);

    const char *sep = "\n__ggml_vocab_test__\n";
    size_t sep_len = strlen(sep);
    char *p = in, *o = out;
    int total = 0, pass = 0, rt_fail = 0;
    for (;;) {
        char *q = strstr(p, sep);
        if (!q)
            break;
        size_t len = (size_t)(q - p);
        char *eol = strchr(o, '\n');
        assert_non_null(eol);
        *eol = 0;
        /* expected ids */
        int32_t exp[4096];
        size_t n_exp = 0;
        for (char *s = o; *s;) {
            while (*s == ' ')
                s++;
            if (!*s)
                break;
            exp[n_exp++] = (int32_t)strtol(s, &s, 10);
        }
        /* ours */
        size_t n = 0;
        st = ds_tokenize(tok, p, len, DS_TOKENIZE_NO_BOS, NULL, 0, &n);
        assert_true(st == DS_OK || st == DS_ERR_BUFFER_TOO_SMALL);
        int32_t *ids = malloc((n + 1) * sizeof *ids);
        size_t n2 = 0;
        assert_int_equal(ds_tokenize(tok, p, len, DS_TOKENIZE_NO_BOS, ids, n, &n2), DS_OK);
        assert_int_equal(n2, n);
        total++;
        if (n == n_exp && memcmp(ids, exp, n * sizeof *ids) == 0) {
            pass++;
        } else {
            char *a = tt_ids_str(ids, n), *b = tt_ids_str(exp, n_exp);
            printf("MISMATCH %s case %d [%.*s]\n  got      %s\n  expected %s\n", vocab, total, (int)len, p, a, b);
            free(a);
            free(b);
        }
        /* detokenize(expected) == input */
        char *back = malloc(len * 4 + 64);
        size_t bl = 0;
        st = ds_detokenize(tok, exp, n_exp, 0, back, len * 4 + 64, &bl);
        if (st != DS_OK || bl != len || memcmp(back, p, len) != 0) {
            printf("ROUNDTRIP %s case %d differs\n", vocab, total);
            rt_fail++;
        }
        free(back);
        free(ids);
        p = q + sep_len;
        o = eol + 1;
    }
    printf("%s: %d/%d fixture cases token-exact, %d round-trip failures\n", vocab, pass, total, rt_fail);
    assert_true(total >= 40);
    assert_int_equal(pass, total);
    assert_int_equal(rt_fail, 0);
    ds_tokenizer_close(tok);
    free(in);
    free(out);
    free(inp_path);
    free(out_path);
    free(gguf);
}

static void test_deepseek_llm(void **state)
{
    (void)state;
    run_vocab("deepseek-llm");
}

static void test_deepseek_coder(void **state)
{
    (void)state;
    run_vocab("deepseek-coder");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deepseek_llm),
        cmocka_unit_test(test_deepseek_coder),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed == 0 && g_skipped_all) {
        printf("SKIPPED: no tokenizer fixtures under %s\n", tt_shared_dir());
        return TOK_TEST_SKIP_STATUS;
    }
    return failed;
}
