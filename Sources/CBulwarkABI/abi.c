// The ABI is header-only; this file makes CBulwarkABI a buildable C target and checks the header
// compiles for the host as well as for -target bpf.
#include "bulwark_abi.h"
