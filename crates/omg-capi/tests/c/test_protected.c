/*
 * Tests of the protected path in omg.h (omg_device_provision, omg_protected_*), run by
 * tools/test-capi.sh against a real vendor service, device and platform service that it sets
 * up with the omg command:
 *
 *   test_protected REPO DEVICE OTHER_DEVICE PACKAGE VENDOR_PUB SERVER SOCKET ENCLAVE_IMAGE
 *
 * DEVICE is a device directory enrolled with the vendor service at SERVER and not yet
 * provisioned; OTHER_DEVICE another device's directory, not enrolled; PACKAGE micro_speech
 * packaged by the vendor (VENDOR_PUB its public key); SOCKET the Unix socket of
 * `omg platform serve` for DEVICE; ENCLAVE_IMAGE the omg-enclave image. This program
 * provisions DEVICE through the C API, runs the yes and no clips through the embedded
 * launcher and through the platform service, and checks the refusals (an unprovisioned device,
 * another device's sealed blob, a device the vendor does not know, bad arguments).
 * Exit status 0 only if every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "omg.h"


/* A clip from assets/clips followed by one second of silence (which pushes the keyword
 * through the classifier's window), as 16 kHz mono samples. */
static int16_t *clip_and_silence(const char *repo, const char *name, size_t *count) {
    char path[4096];
    snprintf(path, sizeof path, "%s/assets/clips/%s.wav", repo, name);
    int16_t *clip = NULL;
    size_t n = 0;
    OK(omg_wav_read_file(path, &clip, &n));
    if (clip == NULL) {
        exit(2);
    }
    int16_t *all = calloc(n + 16000, sizeof *all);
    if (all == NULL) {
        exit(2);
    }
    memcpy(all, clip, n * sizeof *clip);
    omg_samples_free(clip, n);
    *count = n + 16000;
    return all;
}

/* Events seen by the callback. */
typedef struct {
    int count;
    char first_label[64];
    uint64_t first_time_ms;
    int first_has_score;
} Seen;

static void on_event(const OmgProtectedEvent *e, void *user) {
    Seen *seen = user;
    if (seen->count++ == 0) {
        snprintf(seen->first_label, sizeof seen->first_label, "%s", e->label);
        seen->first_time_ms = e->time_ms;
        seen->first_has_score = e->has_score;
    }
}

static void test_null_arguments(const unsigned char *package, size_t size) {
    OmgProtected *s = (OmgProtected *)1;
    EXPECT(omg_protected_open_service(NULL, package, size, &s), OMG_STATUS_NULL_ARGUMENT,
           "socket is NULL");
    CHECK(s == NULL);
    s = (OmgProtected *)1;
    EXPECT(omg_protected_open_service("/nonexistent/omg.sock", NULL, size, &s),
           OMG_STATUS_NULL_ARGUMENT, "package is NULL");
    CHECK(s == NULL);
    EXPECT(omg_protected_open_service("/nonexistent/omg.sock", package, 0, &s),
           OMG_STATUS_INVALID_ARGUMENT, "no bytes");
    EXPECT(omg_protected_open_service("/nonexistent/omg.sock", package, size, NULL),
           OMG_STATUS_NULL_ARGUMENT, "out is NULL");
    EXPECT(omg_protected_open_service("/nonexistent/omg.sock", package, size, &s),
           OMG_STATUS_IO, "is `omg platform serve` running?");
    CHECK(s == NULL);
    EXPECT(omg_protected_open_embedded(NULL, NULL, package, size, &s), OMG_STATUS_NULL_ARGUMENT,
           "device_dir is NULL");
    EXPECT(omg_protected_open_embedded("/nonexistent", NULL, package, size, &s),
           OMG_STATUS_REFUSED, "there is no device in /nonexistent");
    CHECK(s == NULL);
    const unsigned char junk[5] = {1, 2, 3, 4, 5};
    EXPECT(omg_protected_open_embedded("/nonexistent", NULL, junk, sizeof junk, &s),
           OMG_STATUS_REFUSED, "not an omg model package");

    OmgProtectedInfo info;
    OmgProtectedEvent event;
    OmgProtectedSummary summary;
    bool has = false;
    uint64_t dropped = 0;
    int16_t sample = 0;
    EXPECT(omg_protected_info(NULL, &info), OMG_STATUS_NULL_ARGUMENT, "session is NULL");
    EXPECT(omg_protected_set_callback(NULL, on_event, NULL), OMG_STATUS_NULL_ARGUMENT,
           "session is NULL");
    EXPECT(omg_protected_feed(NULL, &sample, 1), OMG_STATUS_NULL_ARGUMENT, "session is NULL");
    EXPECT(omg_protected_poll(NULL, &event, &has), OMG_STATUS_NULL_ARGUMENT,
           "session is NULL");
    EXPECT(omg_protected_dropped_events(NULL, &dropped), OMG_STATUS_NULL_ARGUMENT,
           "session is NULL");
    EXPECT(omg_protected_finish(NULL, &summary), OMG_STATUS_NULL_ARGUMENT, "session is NULL");
    omg_protected_free(NULL);

    const unsigned char key[65] = {4};
    OmgProvisioned p;
    EXPECT(omg_device_provision(NULL, package, size, key, sizeof key, "http://x", NULL, &p),
           OMG_STATUS_NULL_ARGUMENT, "device_dir is NULL");
    EXPECT(omg_device_provision("/nonexistent", NULL, size, key, sizeof key, "http://x", NULL,
                                &p),
           OMG_STATUS_NULL_ARGUMENT, "package is NULL");
    EXPECT(omg_device_provision("/nonexistent", package, size, NULL, 65, "http://x", NULL, &p),
           OMG_STATUS_NULL_ARGUMENT, "vendor_key is NULL");
    EXPECT(omg_device_provision("/nonexistent", package, size, key, sizeof key, NULL, NULL, &p),
           OMG_STATUS_NULL_ARGUMENT, "server is NULL");
    EXPECT(omg_device_provision("/nonexistent", package, size, key, 3, "http://x", NULL, &p),
           OMG_STATUS_INVALID_ARGUMENT, "not a P-256 public key");
}

/* Runs the clip `name` in `s`, polling, in chunks of `chunk` samples; checks the first event
 * is `want` and the summary counts every sample. */
static void run_polling(OmgProtected *s, const char *repo, const char *name, const char *want,
                        size_t chunk) {
    size_t n = 0;
    int16_t *samples = clip_and_silence(repo, name, &n);
    for (size_t at = 0; at < n; at += chunk) {
        size_t len = n - at < chunk ? n - at : chunk;
        OK(omg_protected_feed(s, samples + at, len));
    }
    OmgProtectedSummary summary = {0, 0};
    OK(omg_protected_finish(s, &summary));
    CHECK(summary.samples == n);
    CHECK(summary.classifications > 0);
    OmgProtectedEvent e;
    bool has = false;
    OK(omg_protected_poll(s, &e, &has));
    CHECK(has);
    if (has) {
        CHECK(strcmp(e.label, want) == 0);
        CHECK(e.time_ms > 0 && e.time_ms <= n * 1000 / 16000);
        printf("  %s: first event %s at %llu ms, score %s%u\n", name, e.label,
               (unsigned long long)e.time_ms, e.has_score ? "" : "(hidden) ", e.score);
    }
    uint64_t dropped = 1;
    OK(omg_protected_dropped_events(s, &dropped));
    CHECK(dropped == 0);
    /* The session takes no more audio; finishing again says the same. */
    EXPECT(omg_protected_feed(s, samples, 1), OMG_STATUS_INVALID_ARGUMENT, "finished");
    OmgProtectedSummary again = {0, 0};
    OK(omg_protected_finish(s, &again));
    CHECK(again.samples == summary.samples);
    free(samples);
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr,
                "usage: %s REPO DEVICE OTHER_DEVICE PACKAGE VENDOR_PUB SERVER SOCKET "
                "ENCLAVE_IMAGE\n",
                argv[0]);
        return 2;
    }
    const char *repo = argv[1], *device = argv[2], *other = argv[3], *package_path = argv[4];
    const char *vendor_pub = argv[5], *server = argv[6], *socket = argv[7], *image = argv[8];
    size_t size = 0, key_size = 0;
    unsigned char *package = read_file(package_path, &size);
    unsigned char *key = read_file(vendor_pub, &key_size);

    puts("- bad arguments");
    test_null_arguments(package, size);

    puts("- before provisioning: refused");
    OmgProtected *s = (OmgProtected *)1;
    EXPECT(omg_protected_open_embedded(device, image, package, size, &s), OMG_STATUS_REFUSED,
           "not provisioned on this device");
    CHECK(s == NULL);

    puts("- a device the vendor does not know: refused, nothing stored");
    OmgProvisioned p;
    memset(&p, 0, sizeof p);
    EXPECT(omg_device_provision(other, package, size, key, key_size, server, NULL, &p),
           OMG_STATUS_REFUSED, "the vendor service refused");

    puts("- provisioning through the vendor service");
    OK(omg_device_provision(device, package, size, key, key_size, server, NULL, &p));
    CHECK(p.version == 1);
    CHECK(p.not_after == 4102444800ULL);
    CHECK(!p.has_lease);
    int nonzero = 0;
    for (int i = 0; i < 32; i++) {
        nonzero |= p.measurement[i];
    }
    CHECK(nonzero);

    puts("- embedded launcher: yes, polled, in chunks of 1237 samples");
    OK(omg_protected_open_embedded(device, image, package, size, &s));
    if (s != NULL) {
        OmgProtectedInfo info;
        OK(omg_protected_info(s, &info));
        CHECK(info.version == 1);
        CHECK(info.model_id != NULL && strlen(info.model_id) > 0);
        CHECK(info.output_policy == 1);
        CHECK(info.not_after == 4102444800ULL);
        CHECK(!info.has_lease);
        EXPECT(omg_protected_info(s, NULL), OMG_STATUS_NULL_ARGUMENT, "info is NULL");
        bool has = true;
        OmgProtectedEvent e;
        EXPECT(omg_protected_poll(s, NULL, &has), OMG_STATUS_NULL_ARGUMENT, "event is NULL");
        EXPECT(omg_protected_poll(s, &e, NULL), OMG_STATUS_NULL_ARGUMENT,
               "has_event is NULL");
        EXPECT(omg_protected_feed(s, NULL, 5), OMG_STATUS_NULL_ARGUMENT, "samples is NULL");
        OK(omg_protected_feed(s, NULL, 0));
        OK(omg_protected_poll(s, &e, &has));
        CHECK(!has);
        run_polling(s, repo, "yes_en-us", "yes", 1237);
        omg_protected_free(s);
    }

    puts("- platform service: no, by callback, in chunks of 4001 samples");
    s = NULL;
    OK(omg_protected_open_service(socket, package, size, &s));
    if (s != NULL) {
        Seen seen;
        memset(&seen, 0, sizeof seen);
        OK(omg_protected_set_callback(s, on_event, &seen));
        size_t n = 0;
        int16_t *samples = clip_and_silence(repo, "no_en-gb", &n);
        for (size_t at = 0; at < n; at += 4001) {
            OK(omg_protected_feed(s, samples + at, n - at < 4001 ? n - at : 4001));
        }
        OmgProtectedSummary summary = {0, 0};
        OK(omg_protected_finish(s, &summary));
        CHECK(summary.samples == n);
        CHECK(seen.count >= 1);
        CHECK(strcmp(seen.first_label, "no") == 0);
        CHECK(seen.first_has_score);
        printf("  no_en-gb: %d event(s), first %s at %llu ms\n", seen.count, seen.first_label,
               (unsigned long long)seen.first_time_ms);
        /* Nothing went to the queue. */
        bool has = true;
        OmgProtectedEvent e;
        OK(omg_protected_poll(s, &e, &has));
        CHECK(!has);
        omg_protected_free(s);
        free(samples);
    }

    puts("- sessions freed before their end, through the service and embedded");
    for (int embedded = 0; embedded < 2; embedded++) {
        s = NULL;
        if (embedded) {
            OK(omg_protected_open_embedded(device, image, package, size, &s));
        } else {
            OK(omg_protected_open_service(socket, package, size, &s));
        }
        if (s != NULL) {
            int16_t quiet[800] = {0};
            OK(omg_protected_feed(s, quiet, 800));
            omg_protected_free(s);
        }
    }

    puts("- another device's sealed blob: refused by the enclave");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cp -r '%s/models' '%s/'", device, other);
    CHECK(system(cmd) == 0);
    s = (OmgProtected *)1;
    EXPECT(omg_protected_open_embedded(other, image, package, size, &s), OMG_STATUS_REFUSED,
           "the enclave refused to start");
    CHECK(s == NULL);
    printf("  %s\n", omg_last_error_message());

    puts("- a missing enclave image");
    EXPECT(omg_protected_open_embedded(device, "/nonexistent/omg-enclave", package, size, &s),
           OMG_STATUS_IO, "/nonexistent/omg-enclave");

    free(package);
    free(key);
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
