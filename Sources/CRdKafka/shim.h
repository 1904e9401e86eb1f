// librdkafka from Debian's librdkafka-dev (2.0), linked as a system library: the Kafka producer of
// `sink.type: kafka`.
#include <librdkafka/rdkafka.h>
