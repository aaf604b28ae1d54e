// libFuzzer's driver, for bulwark-fuzz built with -sanitize=fuzzer (scripts/fuzz.sh). Declared
// only: the definition comes from libFuzzer's runtime, linked in fuzzing builds alone.
#pragma once
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
