#include <aalogparse/aalogparse.h>
