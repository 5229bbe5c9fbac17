/* Links the no_std static library and calls into it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int64_t omg_check_model(const uint8_t *data, size_t len);
int32_t omg_check_frontend(void);
int32_t omg_check_protocol(void);
int32_t omg_check_enclave(void);

/* The prebuilt `alloc` crate refers to the unwinding personality routine even though the library
 * is built with panic = abort and never unwinds; this stub satisfies the linker. */
void rust_eh_personality(void) {}

int main(int argc, char **argv) {
    static const uint8_t garbage[16] = {1, 2, 3};
    if (omg_check_model(garbage, sizeof garbage) != -1) {
        fprintf(stderr, "garbage was accepted\n");
        return 1;
    }
    if (omg_check_frontend() != 0) {
        fprintf(stderr, "the front end failed\n");
        return 1;
    }
    if (omg_check_protocol() != 0) {
        fprintf(stderr, "a malformed token was accepted\n");
        return 1;
    }
    if (omg_check_enclave() != 0) {
        fprintf(stderr, "the enclave's message codec failed\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); return 1; }
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        int64_t arena = omg_check_model(buf, n);
        printf("%s: arena %lld bytes\n", argv[i], (long long)arena);
        if (arena < 0) return 1;
    }
    puts("no_std static library links and runs");
    return 0;
}
