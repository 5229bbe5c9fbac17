/*
 * Tests of every function in omg.h, bad arguments included, run by tools/test-capi.sh.
 *
 *   test_capi REPO_ROOT
 *
 * The reference checks (outputs byte-equal to TensorFlow Lite Micro's) need the shared test
 * data: set OMG_SHARED_DATA to its folder; without it they are skipped and say so.
 * Exit status 0 only if every check passed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "omg.h"

static char repo[4096];
static const char *shared = NULL;


static const char *path_in(const char *base, const char *rel) {
    static char buf[4][4096];
    static int next = 0;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", base, rel);
    return p;
}

static int argmax(const int8_t *s, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++) {
        if (s[i] > s[best]) best = i;
    }
    return (int)best;
}

/* ---------------------------------------------------------------- interpreter */

static void test_interpreter_errors(const unsigned char *model, size_t size) {
    OmgInterpreter *h = (OmgInterpreter *)0x1;
    unsigned char garbage[256];
    memset(garbage, 0xAB, sizeof garbage);

    EXPECT(omg_interpreter_open_memory(model, size, NULL, NULL), OMG_STATUS_NULL_ARGUMENT, "out");
    EXPECT(omg_interpreter_open_memory(NULL, size, NULL, &h), OMG_STATUS_NULL_ARGUMENT, "data");
    CHECK(h == NULL);
    EXPECT(omg_interpreter_open_memory(garbage, sizeof garbage, NULL, &h), OMG_STATUS_INVALID_MODEL,
           "malformed");
    CHECK(h == NULL);
    EXPECT(omg_interpreter_open_memory(garbage, 0, NULL, &h), OMG_STATUS_INVALID_MODEL, NULL);
    /* Truncated models: every prefix length class, none may crash or load. */
    size_t cuts[] = {1, 4, 8, 16, 100, size / 4, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        OmgStatus s = omg_interpreter_open_memory(model, cuts[i], NULL, &h);
        CHECK(s == OMG_STATUS_INVALID_MODEL);
        CHECK(h == NULL);
        CHECK(strlen(omg_last_error_message()) > 0);
    }
    /* Garbage after a valid header: flip bytes in the middle of the model. */
    unsigned char *bad = malloc(size);
    memcpy(bad, model, size);
    for (size_t i = 16; i < 64; i++) bad[i] ^= 0x5A;
    OmgStatus s = omg_interpreter_open_memory(bad, size, NULL, &h);
    CHECK(s != OMG_STATUS_OK && s != OMG_STATUS_PANIC);
    CHECK(h == NULL);
    free(bad);

    EXPECT(omg_interpreter_open_memory(model, size, "warp9", &h), OMG_STATUS_INVALID_ARGUMENT,
           "auto, reference");
    CHECK(h == NULL);
    EXPECT(omg_interpreter_open_memory(model, size, "\xff\xfe", &h), OMG_STATUS_INVALID_ARGUMENT,
           "UTF-8");
    EXPECT(omg_interpreter_open_file(NULL, NULL, &h), OMG_STATUS_NULL_ARGUMENT, "path");
    EXPECT(omg_interpreter_open_file(path_in(repo, "no/such/model.tflite"), NULL, &h),
           OMG_STATUS_IO, "model.tflite");
    CHECK(h == NULL);
    EXPECT(omg_interpreter_open_file(path_in(repo, "README.md"), NULL, &h),
           OMG_STATUS_INVALID_MODEL, NULL);
    EXPECT(omg_interpreter_open_file(path_in(repo, "README.md"), NULL, NULL),
           OMG_STATUS_NULL_ARGUMENT, "out");

    /* Calls on a NULL handle. */
    size_t n = 99;
    const char *name = NULL;
    OmgTensorDetails d;
    unsigned char buf[8];
    EXPECT(omg_interpreter_kernels(NULL, &name), OMG_STATUS_NULL_ARGUMENT, "interpreter");
    EXPECT(omg_interpreter_input_count(NULL, &n), OMG_STATUS_NULL_ARGUMENT, "interpreter");
    EXPECT(omg_interpreter_output_count(NULL, &n), OMG_STATUS_NULL_ARGUMENT, "interpreter");
    CHECK(n == 99);
    EXPECT(omg_interpreter_input_details(NULL, 0, &d), OMG_STATUS_NULL_ARGUMENT, "interpreter");
    EXPECT(omg_interpreter_output_details(NULL, 0, &d), OMG_STATUS_NULL_ARGUMENT, "interpreter");
    EXPECT(omg_interpreter_set_input(NULL, 0, buf, 1), OMG_STATUS_NULL_ARGUMENT, "interpreter");
    EXPECT(omg_interpreter_invoke(NULL), OMG_STATUS_NULL_ARGUMENT, "interpreter");
    EXPECT(omg_interpreter_get_output(NULL, 0, buf, sizeof buf), OMG_STATUS_NULL_ARGUMENT,
           "interpreter");
    EXPECT(omg_interpreter_reset(NULL), OMG_STATUS_NULL_ARGUMENT, "interpreter");
    omg_interpreter_free(NULL);
}

static void test_interpreter_micro_speech(const unsigned char *model, size_t size) {
    OmgInterpreter *h = NULL;
    OK(omg_interpreter_open_memory(model, size, "reference", &h));
    CHECK(h != NULL);
    if (h == NULL) return;

    const char *kernels = NULL;
    OK(omg_interpreter_kernels(h, &kernels));
    CHECK(kernels != NULL && strcmp(kernels, "reference") == 0);
    EXPECT(omg_interpreter_kernels(h, NULL), OMG_STATUS_NULL_ARGUMENT, "name");

    size_t n = 0;
    OK(omg_interpreter_input_count(h, &n));
    CHECK(n == 1);
    OK(omg_interpreter_output_count(h, &n));
    CHECK(n == 1);
    EXPECT(omg_interpreter_input_count(h, NULL), OMG_STATUS_NULL_ARGUMENT, "count");
    EXPECT(omg_interpreter_output_count(h, NULL), OMG_STATUS_NULL_ARGUMENT, "count");

    OmgTensorDetails d;
    OK(omg_interpreter_input_details(h, 0, &d));
    CHECK(d.dtype == OMG_TYPE_INT8);
    CHECK(d.rank == 2 && d.shape[0] == 1 && d.shape[1] == 1960 && d.shape[2] == 0);
    CHECK(d.bytes == 1960);
    CHECK(d.quantized && d.quantization_count == 1);
    CHECK(d.scale > 0.1017f && d.scale < 0.1018f);
    CHECK(d.zero_point == -128);
    CHECK(d.name != NULL);
    OK(omg_interpreter_output_details(h, 0, &d));
    CHECK(d.dtype == OMG_TYPE_INT8);
    CHECK(d.rank == 2 && d.shape[0] == 1 && d.shape[1] == 4);
    CHECK(d.bytes == 4);
    CHECK(d.quantized && d.scale > 0.0f);
    EXPECT(omg_interpreter_input_details(h, 1, &d), OMG_STATUS_INVALID_ARGUMENT, "input index 1");
    EXPECT(omg_interpreter_output_details(h, 7, &d), OMG_STATUS_INVALID_ARGUMENT,
           "output index 7");
    EXPECT(omg_interpreter_input_details(h, 0, NULL), OMG_STATUS_NULL_ARGUMENT, "details");
    EXPECT(omg_interpreter_output_details(h, 0, NULL), OMG_STATUS_NULL_ARGUMENT, "details");

    int8_t input[1960];
    for (int i = 0; i < 1960; i++) input[i] = (int8_t)(i * 7);
    EXPECT(omg_interpreter_set_input(h, 0, input, 1959), OMG_STATUS_INVALID_ARGUMENT,
           "needs 1960 bytes");
    EXPECT(omg_interpreter_set_input(h, 0, input, 1961), OMG_STATUS_INVALID_ARGUMENT, "1960");
    EXPECT(omg_interpreter_set_input(h, 1, input, 1960), OMG_STATUS_INVALID_ARGUMENT,
           "input index 1");
    EXPECT(omg_interpreter_set_input(h, 0, NULL, 1960), OMG_STATUS_NULL_ARGUMENT, "data");
    OK(omg_interpreter_set_input(h, 0, input, sizeof input));
    OK(omg_interpreter_invoke(h));

    int8_t out[8], again[4];
    EXPECT(omg_interpreter_get_output(h, 0, out, 3), OMG_STATUS_INVALID_ARGUMENT, "4 bytes");
    EXPECT(omg_interpreter_get_output(h, 1, out, 4), OMG_STATUS_INVALID_ARGUMENT,
           "output index 1");
    EXPECT(omg_interpreter_get_output(h, 0, NULL, 4), OMG_STATUS_NULL_ARGUMENT, "buffer");
    memset(out, 0x55, sizeof out);
    OK(omg_interpreter_get_output(h, 0, out, sizeof out)); /* larger buffers are fine */
    CHECK(out[4] == 0x55);                                 /* ...and untouched past the output */
    int sum = 0;
    for (int i = 0; i < 4; i++) sum += out[i] + 128;
    CHECK(sum >= 250 && sum <= 260); /* a softmax: the scores add up to about 1 */

    /* The optimized kernels compute the same bytes. */
    OmgInterpreter *fast = NULL;
    OK(omg_interpreter_open_memory(model, size, NULL, &fast));
    if (fast != NULL) {
        OK(omg_interpreter_kernels(fast, &kernels));
        CHECK(kernels != NULL && strcmp(kernels, "reference") != 0);
        OK(omg_interpreter_set_input(fast, 0, input, sizeof input));
        OK(omg_interpreter_invoke(fast));
        OK(omg_interpreter_get_output(fast, 0, again, sizeof again));
        CHECK(memcmp(out, again, 4) == 0);
        OK(omg_interpreter_reset(fast));
        omg_interpreter_free(fast);
    }

    OmgInterpreter *portable = NULL;
    OK(omg_interpreter_open_memory(model, size, "portable", &portable));
    OK(omg_interpreter_kernels(portable, &kernels));
    CHECK(kernels != NULL && strcmp(kernels, "portable") == 0);
    omg_interpreter_free(portable);

    omg_interpreter_free(h);
}

/* Outputs byte-equal to TensorFlow Lite Micro's (reference data). */
static void test_interpreter_reference(void) {
    char model[4096];
    snprintf(model, sizeof model, "%s",
             path_in(shared, "micro_speech/models/micro_speech_quantized.tflite"));
    const char *kernel_sets[] = {"reference", "auto"};
    for (int k = 0; k < 2; k++) {
        OmgInterpreter *h = NULL;
        OK(omg_interpreter_open_file(model, kernel_sets[k], &h));
        if (h == NULL) return;
        const char *pairs[][2] = {
            {"micro_speech/reference/micro_speech_random_input.bin",
             "micro_speech/reference/micro_speech_random_output_tflm.bin"},
            {"micro_speech/reference/yes_1000ms_features.bin",
             "micro_speech/reference/yes_1000ms_scores.bin"},
            {"micro_speech/reference/no_1000ms_features.bin",
             "micro_speech/reference/no_1000ms_scores.bin"},
            {"micro_speech/reference/silence_1000ms_features.bin",
             "micro_speech/reference/silence_1000ms_scores.bin"},
            {"micro_speech/reference/noise_1000ms_features.bin",
             "micro_speech/reference/noise_1000ms_scores.bin"},
        };
        for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
            size_t in_size, want_size;
            unsigned char *in = read_file(path_in(shared, pairs[i][0]), &in_size);
            unsigned char *want = read_file(path_in(shared, pairs[i][1]), &want_size);
            unsigned char got[4];
            OK(omg_interpreter_set_input(h, 0, in, in_size));
            OK(omg_interpreter_invoke(h));
            OK(omg_interpreter_get_output(h, 0, got, sizeof got));
            CHECK(want_size == 4 && memcmp(got, want, 4) == 0);
            free(in);
            free(want);
        }
        omg_interpreter_free(h);
    }
}

/* A stateful model: the audio preprocessor keeps a noise estimate between invocations. */
static void test_interpreter_stateful(void) {
    OmgInterpreter *h = NULL;
    OK(omg_interpreter_open_file(
        path_in(shared, "micro_speech/models/audio_preprocessor_int8.tflite"), NULL, &h));
    if (h == NULL) return;
    int16_t *samples = NULL;
    size_t count = 0;
    OK(omg_wav_read_file(path_in(shared, "micro_speech/testdata/yes_30ms.wav"), &samples, &count));
    CHECK(count == 480);
    size_t want_size;
    unsigned char *want =
        read_file(path_in(shared, "micro_speech/reference/yes_30ms_feature.bin"), &want_size);
    CHECK(want_size == 40);
    int8_t first[40], later[40];
    OK(omg_interpreter_set_input(h, 0, samples, count * sizeof(int16_t)));
    OK(omg_interpreter_invoke(h));
    OK(omg_interpreter_get_output(h, 0, first, sizeof first));
    CHECK(memcmp(first, want, 40) == 0);
    /* Without a reset the state carries over and the same window gives other features. (The
     * input is set before each invoke: like TFLM, the arena may reuse its memory.) */
    int differs = 0;
    for (int i = 0; i < 5; i++) {
        OK(omg_interpreter_set_input(h, 0, samples, count * sizeof(int16_t)));
        OK(omg_interpreter_invoke(h));
        OK(omg_interpreter_get_output(h, 0, later, sizeof later));
        differs |= memcmp(first, later, 40) != 0;
    }
    CHECK(differs);
    OK(omg_interpreter_reset(h));
    OK(omg_interpreter_set_input(h, 0, samples, count * sizeof(int16_t)));
    OK(omg_interpreter_invoke(h));
    OK(omg_interpreter_get_output(h, 0, later, sizeof later));
    CHECK(memcmp(later, want, 40) == 0);
    free(want);
    omg_samples_free(samples, count);
    omg_interpreter_free(h);
}

/* ---------------------------------------------------------------- threads */

struct thread_arg {
    const unsigned char *model;
    size_t size;
    int fail;        /* this thread provokes an error */
    int ok;          /* result */
    char message[256];
};

static void *thread_main(void *p) {
    struct thread_arg *a = p;
    OmgInterpreter *h = NULL;
    a->ok = 1;
    if (a->fail) {
        a->ok &= omg_interpreter_open_memory(a->model, 10, NULL, &h) == OMG_STATUS_INVALID_MODEL;
    }
    for (int r = 0; r < 5; r++) {
        a->ok &= omg_interpreter_open_memory(a->model, a->size, NULL, &h) == OMG_STATUS_OK;
        int8_t in[1960] = {0}, out[4];
        a->ok &= omg_interpreter_set_input(h, 0, in, sizeof in) == OMG_STATUS_OK;
        a->ok &= omg_interpreter_invoke(h) == OMG_STATUS_OK;
        a->ok &= omg_interpreter_get_output(h, 0, out, sizeof out) == OMG_STATUS_OK;
        omg_interpreter_free(h);
    }
    snprintf(a->message, sizeof a->message, "%s", omg_last_error_message());
    return NULL;
}

/* Handles on different threads run concurrently; each thread has its own error message. */
static void test_threads(const unsigned char *model, size_t size) {
    pthread_t t[2];
    struct thread_arg a[2] = {{model, size, 1, 0, ""}, {model, size, 0, 0, ""}};
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, thread_main, &a[i]) == 0);
    for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(a[0].ok && a[1].ok);
    CHECK(strlen(a[0].message) > 0); /* the failing thread's message survived the others' calls */
    CHECK(strlen(a[1].message) == 0); /* and never reached the other thread */
}

/* ---------------------------------------------------------------- pipeline */

struct collected {
    int count;
    char labels[16][16];
    uint64_t times[16];
    unsigned scores[16];
    int user_ok;
};

static void on_event(const OmgEvent *e, void *user) {
    struct collected *c = user;
    c->user_ok = c->user_ok && e != NULL && e->label != NULL;
    if (c->count < 16 && e != NULL) {
        snprintf(c->labels[c->count], sizeof c->labels[0], "%s", e->label);
        c->times[c->count] = e->time_ms;
        c->scores[c->count] = e->score;
        c->count++;
    }
}

static int16_t *load_clip(const char *rel_to_repo, size_t *count) {
    int16_t *s = NULL;
    *count = 0;
    OK(omg_wav_read_file(path_in(repo, rel_to_repo), &s, count));
    return s;
}

/* 0.5 s of silence, "yes", 1.5 s of silence, "no", 1.5 s of silence. */
static int16_t *yes_no_stream(size_t *n) {
    size_t ny, nn;
    int16_t *yes = load_clip("assets/clips/yes_en-us.wav", &ny);
    int16_t *no = load_clip("assets/clips/no_en-us.wav", &nn);
    size_t total = 8000 + ny + 24000 + nn + 24000;
    int16_t *s = calloc(total, sizeof *s);
    memcpy(s + 8000, yes, ny * sizeof *s);
    memcpy(s + 8000 + ny + 24000, no, nn * sizeof *s);
    omg_samples_free(yes, ny);
    omg_samples_free(no, nn);
    *n = total;
    return s;
}

static void feed_in_chunks(OmgPipeline *p, const int16_t *s, size_t n, size_t chunk) {
    for (size_t at = 0; at < n; at += chunk) {
        size_t k = n - at < chunk ? n - at : chunk;
        OK(omg_pipeline_feed(p, s + at, k));
    }
}

static void test_pipeline_errors(void) {
    OmgPipeline *p = (OmgPipeline *)0x1;
    EXPECT(omg_pipeline_open(NULL, NULL, &p), OMG_STATUS_NULL_ARGUMENT, "spec");
    CHECK(p == NULL);
    EXPECT(omg_pipeline_open("micro_speech", NULL, NULL), OMG_STATUS_NULL_ARGUMENT, "out");
    EXPECT(omg_pipeline_open("no-such-pipeline", NULL, &p), OMG_STATUS_PIPELINE, "micro_speech");
    CHECK(p == NULL);
    EXPECT(omg_pipeline_open("micro_speech", "warp9", &p), OMG_STATUS_INVALID_ARGUMENT, "warp9");
    /* A manifest directory whose manifest is not TOML. */
    EXPECT(omg_pipeline_open(path_in(repo, "README.md"), NULL, &p), OMG_STATUS_PIPELINE,
           "invalid manifest");

    size_t n;
    uint32_t rate;
    uint64_t dropped;
    const char *s;
    OmgEvent e;
    bool has;
    int16_t samples[4] = {0};
    int8_t scores[4];
    EXPECT(omg_pipeline_kernels(NULL, &s), OMG_STATUS_NULL_ARGUMENT, "pipeline");
    EXPECT(omg_pipeline_sample_rate(NULL, &rate), OMG_STATUS_NULL_ARGUMENT, "pipeline");
    EXPECT(omg_pipeline_label_count(NULL, &n), OMG_STATUS_NULL_ARGUMENT, "pipeline");
    EXPECT(omg_pipeline_label(NULL, 0, &s), OMG_STATUS_NULL_ARGUMENT, "pipeline");
    EXPECT(omg_pipeline_set_callback(NULL, on_event, NULL), OMG_STATUS_NULL_ARGUMENT, "pipeline");
    EXPECT(omg_pipeline_feed(NULL, samples, 4), OMG_STATUS_NULL_ARGUMENT, "pipeline");
    EXPECT(omg_pipeline_poll(NULL, &e, &has), OMG_STATUS_NULL_ARGUMENT, "pipeline");
    EXPECT(omg_pipeline_dropped_events(NULL, &dropped), OMG_STATUS_NULL_ARGUMENT, "pipeline");
    EXPECT(omg_pipeline_classify_clip(NULL, samples, 4, scores, 4), OMG_STATUS_NULL_ARGUMENT,
           "pipeline");
    EXPECT(omg_pipeline_reset(NULL), OMG_STATUS_NULL_ARGUMENT, "pipeline");
    omg_pipeline_free(NULL);
}

static void test_pipeline(void) {
    OmgPipeline *p = NULL;
    OK(omg_pipeline_open("micro_speech", NULL, &p));
    if (p == NULL) return;

    const char *kernels = NULL;
    OK(omg_pipeline_kernels(p, &kernels));
    CHECK(kernels != NULL && strlen(kernels) > 0);
    EXPECT(omg_pipeline_kernels(p, NULL), OMG_STATUS_NULL_ARGUMENT, "name");
    uint32_t rate = 0;
    OK(omg_pipeline_sample_rate(p, &rate));
    CHECK(rate == 16000);
    EXPECT(omg_pipeline_sample_rate(p, NULL), OMG_STATUS_NULL_ARGUMENT, "rate");
    size_t n = 0;
    OK(omg_pipeline_label_count(p, &n));
    CHECK(n == 4);
    EXPECT(omg_pipeline_label_count(p, NULL), OMG_STATUS_NULL_ARGUMENT, "count");
    const char *want_labels[] = {"silence", "unknown", "yes", "no"};
    for (size_t i = 0; i < 4; i++) {
        const char *l = NULL;
        OK(omg_pipeline_label(p, i, &l));
        CHECK(l != NULL && strcmp(l, want_labels[i]) == 0);
    }
    const char *l = NULL;
    EXPECT(omg_pipeline_label(p, 4, &l), OMG_STATUS_INVALID_ARGUMENT, "label index 4");
    EXPECT(omg_pipeline_label(p, 0, NULL), OMG_STATUS_NULL_ARGUMENT, "label");

    /* Whole clips, as `omg classify`. */
    const char *clips[][2] = {{"assets/clips/yes_en-us.wav", "yes"},
                              {"assets/clips/yes_en-gb.wav", "yes"},
                              {"assets/clips/no_en-us.wav", "no"},
                              {"assets/clips/no_en-gb.wav", "no"},
                              {"assets/clips/silence.wav", "silence"}};
    int8_t scores[4];
    for (size_t i = 0; i < sizeof clips / sizeof clips[0]; i++) {
        size_t count;
        int16_t *s = load_clip(clips[i][0], &count);
        OK(omg_pipeline_classify_clip(p, s, count, scores, 4));
        CHECK(strcmp(want_labels[argmax(scores, 4)], clips[i][1]) == 0);
        if (i == 0) {
            EXPECT(omg_pipeline_classify_clip(p, s, count, scores, 3),
                   OMG_STATUS_INVALID_ARGUMENT, "4 labels");
            EXPECT(omg_pipeline_classify_clip(p, s, 0, scores, 4), OMG_STATUS_INVALID_ARGUMENT,
                   "no samples");
            EXPECT(omg_pipeline_classify_clip(p, NULL, count, scores, 4),
                   OMG_STATUS_NULL_ARGUMENT, "samples");
            EXPECT(omg_pipeline_classify_clip(p, s, count, NULL, 4), OMG_STATUS_NULL_ARGUMENT,
                   "scores");
        }
        omg_samples_free(s, count);
    }

    /* Streaming, events polled. */
    size_t total;
    int16_t *stream = yes_no_stream(&total);
    OmgEvent e;
    bool has = true;
    OK(omg_pipeline_poll(p, &e, &has));
    CHECK(!has);
    EXPECT(omg_pipeline_poll(p, NULL, &has), OMG_STATUS_NULL_ARGUMENT, "event");
    EXPECT(omg_pipeline_poll(p, &e, NULL), OMG_STATUS_NULL_ARGUMENT, "has_event");
    EXPECT(omg_pipeline_feed(p, NULL, 5), OMG_STATUS_NULL_ARGUMENT, "samples");
    OK(omg_pipeline_feed(p, NULL, 0));
    EXPECT(omg_pipeline_feed(p, (const int16_t *)((const char *)stream + 1), 4),
           OMG_STATUS_INVALID_ARGUMENT, "aligned");
    feed_in_chunks(p, stream, total, 160);
    const char *polled[8];
    uint64_t times[8];
    int k = 0;
    for (;;) {
        OK(omg_pipeline_poll(p, &e, &has));
        if (!has || k == 8) break;
        CHECK(e.label != NULL && e.label_index < 4 && e.score > 215);
        polled[k] = e.label;
        times[k] = e.time_ms;
        k++;
    }
    CHECK(k == 2);
    if (k == 2) {
        CHECK(strcmp(polled[0], "yes") == 0 && strcmp(polled[1], "no") == 0);
        /* "yes" is at 0.5 s..1.5 s of the stream, "no" at 3.0 s..4.0 s; an event comes at most
         * half a second after its word ends. */
        CHECK(times[0] >= 500 && times[0] <= 2000);
        CHECK(times[1] >= 3000 && times[1] <= 4500);
    }
    uint64_t dropped = 99;
    OK(omg_pipeline_dropped_events(p, &dropped));
    CHECK(dropped == 0);
    EXPECT(omg_pipeline_dropped_events(p, NULL), OMG_STATUS_NULL_ARGUMENT, "count");

    /* Reset clears a half-fed stream and the queue. */
    feed_in_chunks(p, stream, 8000 + 12000, 1000);
    OK(omg_pipeline_reset(p));
    OK(omg_pipeline_poll(p, &e, &has));
    CHECK(!has);

    /* The same stream through a callback, in one call, after a reset: the same events. */
    struct collected c;
    memset(&c, 0, sizeof c);
    c.user_ok = 1;
    OK(omg_pipeline_reset(p));
    OK(omg_pipeline_set_callback(p, on_event, &c));
    OK(omg_pipeline_feed(p, stream, total));
    CHECK(c.count == 2 && c.user_ok);
    if (c.count == 2 && k == 2) {
        CHECK(strcmp(c.labels[0], "yes") == 0 && strcmp(c.labels[1], "no") == 0);
        CHECK(c.times[0] == times[0] && c.times[1] == times[1]);
    }
    OK(omg_pipeline_poll(p, &e, &has));
    CHECK(!has); /* nothing queued while a callback is set */

    /* Back to polling. */
    OK(omg_pipeline_set_callback(p, NULL, NULL));
    OK(omg_pipeline_reset(p));
    feed_in_chunks(p, stream, total, 4000);
    CHECK(c.count == 2);
    int polled_again = 0;
    do {
        OK(omg_pipeline_poll(p, &e, &has));
        polled_again += has;
    } while (has && polled_again < 8);
    CHECK(polled_again == 2);

    free(stream);
    omg_pipeline_free(p);

    /* The reference kernels give the same decisions. */
    OmgPipeline *r = NULL;
    OK(omg_pipeline_open("micro_speech", "reference", &r));
    OK(omg_pipeline_kernels(r, &kernels));
    CHECK(kernels != NULL && strcmp(kernels, "reference") == 0);
    omg_pipeline_free(r);

    /* A manifest directory: the bundled pipeline's own. */
    OmgPipeline *dir = NULL;
    OK(omg_pipeline_open(path_in(repo, "assets/pipelines/micro_speech"), NULL, &dir));
    OK(omg_pipeline_label_count(dir, &n));
    CHECK(n == 4);
    omg_pipeline_free(dir);
}

/* Scores byte-equal to TFLM's for its four clips (reference data). */
static void test_pipeline_reference(void) {
    OmgPipeline *p = NULL;
    OK(omg_pipeline_open("micro_speech", NULL, &p));
    if (p == NULL) return;
    const char *clips[] = {"yes_1000ms", "no_1000ms", "silence_1000ms", "noise_1000ms"};
    for (int i = 0; i < 4; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "micro_speech/testdata/%s.wav", clips[i]);
        int16_t *s = NULL;
        size_t count = 0;
        OK(omg_wav_read_file(path_in(shared, rel), &s, &count));
        int8_t scores[4];
        OK(omg_pipeline_classify_clip(p, s, count, scores, 4));
        snprintf(rel, sizeof rel, "micro_speech/reference/%s_scores.bin", clips[i]);
        size_t want_size;
        unsigned char *want = read_file(path_in(shared, rel), &want_size);
        CHECK(want_size == 4 && memcmp(scores, want, 4) == 0);
        free(want);
        omg_samples_free(s, count);
    }
    omg_pipeline_free(p);
}

/* ---------------------------------------------------------------- WAV decoding */

static void put16(unsigned char *p, unsigned v) {
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
}
static void put32(unsigned char *p, unsigned long v) {
    put16(p, v & 0xffff);
    put16(p + 2, (v >> 16) & 0xffff);
}

static void test_wav(void) {
    int16_t *s = (int16_t *)0x1;
    size_t count = 7;
    unsigned char garbage[100];
    memset(garbage, 'x', sizeof garbage);
    EXPECT(omg_wav_decode(garbage, sizeof garbage, &s, &count), OMG_STATUS_PIPELINE, "WAV");
    EXPECT(omg_wav_decode(NULL, 10, &s, &count), OMG_STATUS_NULL_ARGUMENT, "data");
    EXPECT(omg_wav_decode(garbage, 10, NULL, &count), OMG_STATUS_NULL_ARGUMENT, "samples");
    EXPECT(omg_wav_decode(garbage, 10, &s, NULL), OMG_STATUS_NULL_ARGUMENT, "count");
    EXPECT(omg_wav_read_file(NULL, &s, &count), OMG_STATUS_NULL_ARGUMENT, "path");
    EXPECT(omg_wav_read_file(path_in(repo, "no/such.wav"), &s, &count), OMG_STATUS_IO,
           "such.wav");
    omg_samples_free(NULL, 0);

    /* The "yes" clip as a 48 kHz stereo WAV (each sample three times, both channels): decoded
     * back to about a second at 16 kHz, still "yes". */
    size_t ny;
    int16_t *yes = load_clip("assets/clips/yes_en-us.wav", &ny);
    size_t frames = ny * 3, data_bytes = frames * 4;
    unsigned char *wav = malloc(44 + data_bytes);
    memcpy(wav, "RIFF", 4);
    put32(wav + 4, 36 + data_bytes);
    memcpy(wav + 8, "WAVEfmt ", 8);
    put32(wav + 16, 16);
    put16(wav + 20, 1);
    put16(wav + 22, 2);
    put32(wav + 24, 48000);
    put32(wav + 28, 48000 * 4);
    put16(wav + 32, 4);
    put16(wav + 34, 16);
    memcpy(wav + 36, "data", 4);
    put32(wav + 40, data_bytes);
    for (size_t i = 0; i < frames; i++) {
        put16(wav + 44 + 4 * i, (uint16_t)yes[i / 3]);
        put16(wav + 44 + 4 * i + 2, (uint16_t)yes[i / 3]);
    }
    OK(omg_wav_decode(wav, 44 + data_bytes, &s, &count));
    CHECK(count == ny);
    OmgPipeline *p = NULL;
    OK(omg_pipeline_open("micro_speech", NULL, &p));
    int8_t scores[4];
    OK(omg_pipeline_classify_clip(p, s, count, scores, 4));
    CHECK(argmax(scores, 4) == 2);
    omg_pipeline_free(p);
    omg_samples_free(s, count);
    /* A 16 kHz mono WAV in memory decodes to exactly its samples. */
    size_t wav_size;
    unsigned char *raw = read_file(path_in(repo, "assets/clips/yes_en-us.wav"), &wav_size);
    OK(omg_wav_decode(raw, wav_size, &s, &count));
    CHECK(count == ny && memcmp(s, yes, ny * 2) == 0);
    omg_samples_free(s, count);
    free(raw);
    free(wav);
    omg_samples_free(yes, ny);
}

/* ---------------------------------------------------------------- streaming resampler */

/* Resamples `n` samples at `rate` pushed in chunks of the sizes in `sizes` (cycling; NULL: all
 * at once); returns the 16 kHz output (to free) and its length in `*out_n`. */
static int16_t *resample(OmgResampler *r, const int16_t *in, size_t n, const size_t *sizes,
                         size_t nsizes, size_t *out_n) {
    int16_t *all = malloc((n + 64) * sizeof *all);
    size_t total = 0, at = 0, k = 0;
    const int16_t *out = NULL;
    size_t count = 0;
    OK(omg_resampler_reset(r));
    while (at < n) {
        size_t len = sizes == NULL ? n : sizes[k++ % nsizes];
        if (len > n - at) len = n - at;
        OK(omg_resampler_push(r, in + at, len, &out, &count));
        CHECK(total + count <= n + 64);
        if (count > 0 && total + count <= n + 64) memcpy(all + total, out, count * sizeof *out);
        total += count;
        at += len;
    }
    OK(omg_resampler_finish(r, &out, &count));
    CHECK(total + count <= n + 64);
    if (count > 0 && total + count <= n + 64) memcpy(all + total, out, count * sizeof *out);
    total += count;
    *out_n = total;
    return all;
}

static void test_resampler(void) {
    OmgResampler *r = (OmgResampler *)1;
    EXPECT(omg_resampler_open(3999, &r), OMG_STATUS_INVALID_ARGUMENT, "3999 Hz");
    CHECK(r == NULL);
    EXPECT(omg_resampler_open(384001, &r), OMG_STATUS_INVALID_ARGUMENT, "384 kHz");
    EXPECT(omg_resampler_open(44100, NULL), OMG_STATUS_NULL_ARGUMENT, "out");
    const int16_t *out = NULL;
    size_t count = 0;
    uint32_t rate = 0;
    int16_t one = 1;
    EXPECT(omg_resampler_push(NULL, &one, 1, &out, &count), OMG_STATUS_NULL_ARGUMENT,
           "resampler");
    EXPECT(omg_resampler_finish(NULL, &out, &count), OMG_STATUS_NULL_ARGUMENT, "resampler");
    EXPECT(omg_resampler_reset(NULL), OMG_STATUS_NULL_ARGUMENT, "resampler");
    EXPECT(omg_resampler_rate(NULL, &rate), OMG_STATUS_NULL_ARGUMENT, "resampler");
    omg_resampler_free(NULL);

    OK(omg_resampler_open(44100, &r));
    OK(omg_resampler_rate(r, &rate));
    CHECK(rate == 44100);
    EXPECT(omg_resampler_rate(r, NULL), OMG_STATUS_NULL_ARGUMENT, "rate");
    EXPECT(omg_resampler_push(r, NULL, 3, &out, &count), OMG_STATUS_NULL_ARGUMENT, "samples");
    EXPECT(omg_resampler_push(r, &one, 1, NULL, &count), OMG_STATUS_NULL_ARGUMENT, "out");
    EXPECT(omg_resampler_push(r, &one, 1, &out, NULL), OMG_STATUS_NULL_ARGUMENT, "out_count");
    EXPECT(omg_resampler_finish(r, NULL, &count), OMG_STATUS_NULL_ARGUMENT, "out");
    OK(omg_resampler_push(r, NULL, 0, &out, &count));
    CHECK(count == 0);

    /* A second and a half at 44.1 kHz: the whole buffer at once, then odd chunk sizes, give
     * the same samples, ceil(n * 16000 / 44100) of them. */
    size_t n = 66150 + 17;
    int16_t *in = malloc(n * sizeof *in);
    for (size_t i = 0; i < n; i++) {
        in[i] = (int16_t)((long)(i * 7919 % 4001) * 13 - 26000);
    }
    size_t whole_n = 0;
    int16_t *whole = resample(r, in, n, NULL, 0, &whole_n);
    CHECK(whole_n == (n * 16000 + 44099) / 44100);
    const size_t odd[][3] = {{1, 2, 3}, {1023, 1, 4097}, {7, 333, 5001}};
    for (size_t t = 0; t < 3; t++) {
        size_t got_n = 0;
        int16_t *got = resample(r, in, n, odd[t], 3, &got_n);
        CHECK(got_n == whole_n && memcmp(got, whole, whole_n * sizeof *got) == 0);
        free(got);
    }
    /* No more samples after the end, until a reset. */
    EXPECT(omg_resampler_push(r, &one, 1, &out, &count), OMG_STATUS_INVALID_ARGUMENT,
           "finished");
    OK(omg_resampler_finish(r, &out, &count));
    CHECK(count == 0);

    /* The same samples as a 44.1 kHz mono 16-bit WAV file: omg_wav_decode gives the same. */
    size_t data_bytes = n * 2;
    unsigned char *wav = malloc(44 + data_bytes);
    memcpy(wav, "RIFF", 4);
    put32(wav + 4, 36 + data_bytes);
    memcpy(wav + 8, "WAVEfmt ", 8);
    put32(wav + 16, 16);
    put16(wav + 20, 1);
    put16(wav + 22, 1);
    put32(wav + 24, 44100);
    put32(wav + 28, 44100 * 2);
    put16(wav + 32, 2);
    put16(wav + 34, 16);
    memcpy(wav + 36, "data", 4);
    put32(wav + 40, data_bytes);
    for (size_t i = 0; i < n; i++) {
        put16(wav + 44 + 2 * i, (uint16_t)in[i]);
    }
    int16_t *decoded = NULL;
    size_t decoded_n = 0;
    OK(omg_wav_decode(wav, 44 + data_bytes, &decoded, &decoded_n));
    CHECK(decoded_n == whole_n && memcmp(decoded, whole, whole_n * sizeof *decoded) == 0);
    omg_samples_free(decoded, decoded_n);
    free(wav);
    free(whole);
    omg_resampler_free(r);

    /* At 16 kHz the samples pass through. */
    OK(omg_resampler_open(16000, &r));
    size_t same_n = 0;
    const size_t chunks[] = {5, 1000};
    int16_t *same = resample(r, in, 16000, chunks, 2, &same_n);
    CHECK(same_n == 16000 && memcmp(same, in, 16000 * sizeof *in) == 0);
    free(same);
    free(in);
    omg_resampler_free(r);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s REPO_ROOT\n", argv[0]);
        return 2;
    }
    snprintf(repo, sizeof repo, "%s", argv[1]);
    shared = getenv("OMG_SHARED_DATA");
    if (shared != NULL && *shared == '\0') shared = NULL;

    CHECK(strcmp(omg_version(), "0.1.0") == 0);
    CHECK(omg_last_error_message() != NULL && strlen(omg_last_error_message()) == 0);

    size_t size;
    unsigned char *model =
        read_file(path_in(repo, "assets/pipelines/micro_speech/micro_speech_quantized.tflite"),
                  &size);
    test_interpreter_errors(model, size);
    test_interpreter_micro_speech(model, size);
    test_threads(model, size);
    test_pipeline_errors();
    test_pipeline();
    test_wav();
    test_resampler();
    if (shared != NULL) {
        test_interpreter_reference();
        test_interpreter_stateful();
        test_pipeline_reference();
    } else {
        printf("test_capi: OMG_SHARED_DATA is not set: skipped the TFLM reference checks\n");
    }
    free(model);
    printf("test_capi: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
