/* A bare-metal entry point for the no_std static library: no C library, no operating system.
 * Linked with -nostdlib -static for aarch64-unknown-none by tools/check-no-std.sh, it proves
 * that the trusted core needs nothing from its surroundings but memory (its allocator is in
 * the library): any symbol the library still referred to would be undefined and fail the link.
 * It is linked, not run. */
#include <stddef.h>
#include <stdint.h>

int64_t omg_check_model(const uint8_t *data, size_t len);
int32_t omg_check_frontend(void);
int32_t omg_check_protocol(void);
int32_t omg_check_enclave(void);

volatile int32_t omg_check_result;

void _start(void) {
    static const uint8_t garbage[16] = {1, 2, 3};
    omg_check_result = (int32_t)omg_check_model(garbage, sizeof garbage) + omg_check_frontend() +
                       omg_check_protocol() + omg_check_enclave();
    for (;;) {
    }
}
