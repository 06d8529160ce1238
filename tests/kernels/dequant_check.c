/*
 * tests/kernels/dequant_check.c — dequantize every tensor of QUANT.gguf with the library
 * (ds_dequant_row_isa, every ISA level of this CPU) and compare it bit for bit (+0 == -0) with
 * the F32 tensor of the same name in REF.gguf. Used by test_quant_models.py on the files written
 * by quantize_gguf.py, which ties that script's encoders/decoders to the library.
 *
 * Usage: dequant-check QUANT.gguf REF.gguf    (prints the type counts; exit 1 on a mismatch)
 */
#include "format/gguf.h"
#include "format/ggml_types.h"
#include "kernels/kernels_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s QUANT.gguf REF.gguf\n", argv[0]);
        return 2;
    }
    size_t qs, rs;
    uint8_t *qb = slurp(argv[1], &qs), *rb = slurp(argv[2], &rs);
    if (!qb || !rb) {
        fprintf(stderr, "cannot read the files\n");
        return 2;
    }
    gguf_file q, r;
    ds_err err;
    if (gguf_parse(&q, qb, qs, &err) != DS_OK || gguf_parse(&r, rb, rs, &err) != DS_OK) {
        fprintf(stderr, "parse: %s\n", err.msg);
        return 2;
    }
    int counts[DS_GGML_TYPE_COUNT] = {0}, bad = 0;
    for (uint64_t i = 0; i < q.n_tensors && !bad; i++) {
        const gguf_tensor *t = &q.tensors[i];
        const gguf_tensor *rt = gguf_find_tensor(&r, t->name);
        if (!rt || rt->type != DS_GGML_F32 || rt->n_elems != t->n_elems) {
            fprintf(stderr, "%s: no matching F32 tensor in the reference\n", t->name);
            return 1;
        }
        counts[t->type]++;
        int64_t k = (int64_t)t->ne[0];
        float *row = malloc(sizeof(float) * (size_t)k);
        for (int isa = 0; isa <= (int)ds_isa_best() && !bad; isa++)
            for (uint64_t n = 0; n < t->n_elems / (uint64_t)k && !bad; n++) {
                if (!ds_dequant_row_isa((ds_isa)isa, t->type, t->data + n * t->row_bytes, row,
                                        k)) {
                    fprintf(stderr, "%s: type %s not dequantizable\n", t->name,
                            ds_ggml_type_name(t->type));
                    bad = 1;
                    break;
                }
                const float *want = (const float *)(rt->data + n * rt->row_bytes);
                for (int64_t e = 0; e < k; e++)
                    if (!(row[e] == want[e])) {
                        fprintf(stderr, "%s (%s) isa %s: row %llu element %lld = %.9g, "
                                "reference %.9g\n", t->name, ds_ggml_type_name(t->type),
                                ds_isa_name((ds_isa)isa), (unsigned long long)n,
                                (long long)e, row[e], want[e]);
                        bad = 1;
                        break;
                    }
            }
        free(row);
    }
    for (int t = 0; t < DS_GGML_TYPE_COUNT; t++)
        if (counts[t])
            printf("%s:%d ", ds_ggml_type_name((uint32_t)t), counts[t]);
    printf("%s\n", bad ? "MISMATCH" : "ok");
    gguf_free(&q);
    gguf_free(&r);
    free(qb);
    free(rb);
    return bad;
}
