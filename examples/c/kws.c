/*
 * Keyword spotting with libomg: streams a WAV file (any rate, any channel count) through a
 * keyword pipeline and prints each keyword as it is recognised, then the whole-clip decision.
 *
 *   kws FILE.wav [PIPELINE]      PIPELINE: micro_speech (default) or a manifest directory
 *
 * Build (from the repository root, after `cargo build --release -p omg-capi`):
 *   gcc -Wall -Wextra -O2 -Iinclude examples/c/kws.c -Ltarget/release -lomg \
 *       -Wl,-rpath,"$PWD/target/release" -o kws
 * or statically: replace `-Ltarget/release -lomg -Wl,...` by `target/release/libomg.a -lm -ldl -pthread`.
 */
#include <stdio.h>
#include <stdlib.h>

#include "omg.h"

/* Called by omg_pipeline_feed for each keyword, on the feeding thread. */
static void on_keyword(const OmgEvent *event, void *user_data) {
    int *found = user_data;
    printf("%s at %llu ms (score %u)\n", event->label, (unsigned long long)event->time_ms,
           (unsigned)event->score);
    (*found)++;
}

static int fail(const char *what, OmgStatus status) {
    fprintf(stderr, "kws: %s failed (status %d): %s\n", what, (int)status,
            omg_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s FILE.wav [PIPELINE]\n", argv[0]);
        return 2;
    }
    const char *spec = argc == 3 ? argv[2] : "micro_speech";

    /* The audio as 16 kHz mono 16-bit samples (converted if the file is anything else). */
    int16_t *samples = NULL;
    size_t count = 0;
    OmgStatus s = omg_wav_read_file(argv[1], &samples, &count);
    if (s != OMG_STATUS_OK) return fail("reading the WAV file", s);

    OmgPipeline *pipeline = NULL;
    s = omg_pipeline_open(spec, NULL, &pipeline); /* NULL: the fastest kernels this CPU runs */
    if (s != OMG_STATUS_OK) {
        omg_samples_free(samples, count);
        return fail("opening the pipeline", s);
    }

    int found = 0;
    int status = 0;
    omg_pipeline_set_callback(pipeline, on_keyword, &found);
    /* Stream in 20 ms chunks, as a microphone would deliver them, then one second of silence so
     * that a keyword at the very end of the file is recognised too. */
    static const int16_t silence[16000];
    for (size_t at = 0; at < count && status == 0; at += 320) {
        size_t n = count - at < 320 ? count - at : 320;
        s = omg_pipeline_feed(pipeline, samples + at, n);
        if (s != OMG_STATUS_OK) status = fail("feeding audio", s);
    }
    if (status == 0 && (s = omg_pipeline_feed(pipeline, silence, 16000)) != OMG_STATUS_OK) {
        status = fail("feeding audio", s);
    }

    /* One decision over the whole clip (its first second), as `omg classify` gives it. */
    size_t labels = 0;
    int8_t scores[64];
    if (status == 0 && omg_pipeline_label_count(pipeline, &labels) == OMG_STATUS_OK &&
        labels <= 64) {
        s = omg_pipeline_classify_clip(pipeline, samples, count, scores, labels);
        if (s != OMG_STATUS_OK) {
            status = fail("classifying the clip", s);
        } else {
            size_t best = 0;
            for (size_t i = 1; i < labels; i++) {
                if (scores[i] > scores[best]) best = i;
            }
            const char *label = "?";
            omg_pipeline_label(pipeline, best, &label);
            printf("clip: %s (%d keyword event(s) while streaming)\n", label, found);
        }
    }

    omg_pipeline_free(pipeline);
    omg_samples_free(samples, count);
    return status;
}
