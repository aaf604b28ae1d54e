// glibc's posix_spawn_file_actions_addclosefrom_np (2.34+), which Swift's Glibc module does not
// expose: a spawned helper gets descriptors 0-2 and nothing else.
#pragma once
#include <spawn.h>

int bulwark_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);
