/*
 * tests/session/test_threads.c — two threads generating on two sessions of one model at the same
 * time give the same tokens as each session run alone (the sessions share the weights and the
 * model's matmul context), also with a per-session thread count; plus ds_session_cancel from
 * another thread while a generation runs.
 */
#include "sess_util.h"

#include <pthread.h>
#include <unistd.h>

static ds_model *g_wide;

static int setup(void **state)
{
    (void)state;
    g_wide = tu_model("DS_SESS_WIDE");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ds_model_close(g_wide);
    return 0;
}

enum { STEPS = 48, PROMPT = 200 };

typedef struct job {
    uint64_t seed;
    int32_t n_threads;
    int32_t out[STEPS];
    ds_status st;
} job;

static void *run(void *u)
{
    job *j = u;
    int32_t prompt[PROMPT];
    tu_prompt(prompt, PROMPT, 512, (uint32_t)j->seed);
    ds_session_params p = tu_params(PROMPT + STEPS + 8);
    p.temperature = 0.8f;
    p.top_k = 64;
    p.seed = j->seed;
    p.n_batch = 64;
    p.n_threads = j->n_threads;
    ds_session *s = NULL;
    j->st = ds_session_open(&s, g_wide, &p);
    if (j->st != DS_OK)
        return NULL;
    j->st = ds_session_feed(s, prompt, PROMPT);
    for (int i = 0; i < STEPS && j->st == DS_OK; i++)
        j->st = ds_session_step(s, &j->out[i]);
    ds_session_close(s);
    return NULL;
}

static void check_pair(int32_t threads_a, int32_t threads_b)
{
    job alone[2] = {{.seed = 1, .n_threads = threads_a}, {.seed = 2, .n_threads = threads_b}};
    job both[2] = {{.seed = 1, .n_threads = threads_a}, {.seed = 2, .n_threads = threads_b}};
    run(&alone[0]);
    run(&alone[1]);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, run, &both[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(alone[i].st, DS_OK);
        assert_int_equal(both[i].st, DS_OK);
        assert_memory_equal(alone[i].out, both[i].out, sizeof alone[i].out);
    }
    assert_memory_not_equal(alone[0].out, alone[1].out, sizeof alone[0].out);
}

static void test_two_threads_shared_mm(void **state)
{
    (void)state;
    check_pair(0, 0);
}

static void test_two_threads_own_threads(void **state)
{
    (void)state;
    check_pair(1, 1);
}

typedef struct cjob {
    ds_session *s;
    volatile int started;
} cjob;

static void *cancel_soon(void *u)
{
    cjob *c = u;
    while (!c->started)
        usleep(1000);
    usleep(30000);
    ds_session_cancel(c->s);
    return NULL;
}

static void test_cancel_generation_from_thread(void **state)
{
    (void)state;
    int32_t prompt[32];
    tu_prompt(prompt, 32, 512, 9);
    ds_session_params p = tu_params(4096);
    cjob c = {tu_open(g_wide, &p), 0};
    tu_feed(c.s, prompt, 32);
    pthread_t th;
    pthread_create(&th, NULL, cancel_soon, &c);
    c.started = 1;
    ds_status st = DS_OK;
    int32_t t;
    int n = 0;
    while (st == DS_OK && n < 4000) {
        st = ds_session_step(c.s, &t);
        n++;
    }
    pthread_join(th, NULL);
    assert_int_equal(st, DS_ERR_CANCELLED);
    /* consistent and usable */
    assert_int_equal(ds_session_n_tokens(c.s), 32 + (size_t)n - 1);
    tu_step(c.s);
    ds_session_close(c.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_threads_shared_mm),
        cmocka_unit_test(test_two_threads_own_threads),
        cmocka_unit_test(test_cancel_generation_from_thread),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
