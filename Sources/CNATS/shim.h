// The NATS C client from Debian's libnats-dev (nats.c 3.4), linked as a system library.
#include <nats/nats.h>
