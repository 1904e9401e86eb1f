/*
 * A Kafka cluster for hostmeter's tests and bench: librdkafka's mock cluster (rdkafka_mock.h), which
 * speaks the real Kafka protocol on loopback ports, held by this process and driven over stdin.
 *
 *   kafka_mock_cluster BROKERS TOPIC PARTITIONS REPLICATION
 *
 * Prints one line, {"bootstraps":"127.0.0.1:…,…"}, once the cluster listens, then reads commands,
 * one a line, and answers each with one line ("ok", "error: …", or for dump the messages then
 * {"end":N}):
 *
 *   errors APIKEY ERR [ERR…]   the next requests of APIKEY (0: Produce) fail with these errors
 *   leader PARTITION BROKER    moves the partition's leader
 *   down BROKER | up BROKER    takes a broker off the network and back
 *   dump                       every message of the topic, a JSON object a line:
 *                              {"partition":P,"offset":O,"key":"…","headers":{…},"value":…}
 *                              (the value is printed as it is: the tests publish JSON objects)
 *   quit                       (or end of input) destroys the cluster and exits 0
 *
 * Built by the tests and the bench with: cc -O1 -o kafka_mock_cluster kafka_mock_cluster.c -lrdkafka -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A real Kafka broker sets TCP_NODELAY on every connection it accepts; librdkafka's mock broker does
 * not, so its answers wait on Nagle's algorithm for the client's delayed ACK (about 40 ms a request
 * on Linux), which a drain measured against it would count as the sink's. The executable's own
 * accept() comes first in symbol lookup, so the mock's accepts come here and get what a real
 * broker's get.
 */
int accept(int listener, struct sockaddr *address, socklen_t *length) {
    static int (*real_accept)(int, struct sockaddr *, socklen_t *);
    if (!real_accept) real_accept = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int connection = real_accept(listener, address, length);
    if (connection >= 0) {
        int on = 1;
        setsockopt(connection, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    return connection;
}

static const char *topic;
static int partitions;
static const char *bootstraps;

/* A JSON string of len bytes of text: quotes, backslashes and control bytes escaped. */
static void print_json_string(const char *text, size_t len) {
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static rd_kafka_t *make_client(rd_kafka_type_t type, const char *group) {
    char error[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The cluster's holder has no brokers to connect to: it need not say so. */
    if (!bootstraps && rd_kafka_conf_set(conf, "log_level", "3", error, sizeof error) != RD_KAFKA_CONF_OK) goto fail;
    if (bootstraps && rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, error, sizeof error) != RD_KAFKA_CONF_OK)
        goto fail;
    if (group) {
        if (rd_kafka_conf_set(conf, "group.id", group, error, sizeof error) != RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", error, sizeof error) != RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "enable.partition.eof", "true", error, sizeof error) != RD_KAFKA_CONF_OK)
            goto fail;
    }
    rd_kafka_t *client = rd_kafka_new(type, conf, error, sizeof error);
    if (client) return client;
fail:
    fprintf(stderr, "kafka_mock_cluster: %s\n", error);
    exit(2);
}

/* Reads every partition from offset 0 to its end and prints the messages. */
static void dump(void) {
    rd_kafka_t *consumer = make_client(RD_KAFKA_CONSUMER, "kafka-mock-dump");
    rd_kafka_topic_partition_list_t *assignment = rd_kafka_topic_partition_list_new(partitions);
    int64_t *ends = calloc((size_t)partitions, sizeof *ends);
    int open = 0;
    for (int p = 0; p < partitions; p++) {
        int64_t low = 0, high = 0;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(consumer, topic, p, &low, &high, 10000);
        if (err) {
            printf("error: watermarks of partition %d: %s\n", p, rd_kafka_err2str(err));
            fflush(stdout);
            goto done;
        }
        ends[p] = high;
        if (high > low) {
            rd_kafka_topic_partition_list_add(assignment, topic, p)->offset = low;
            open++;
        }
    }
    rd_kafka_assign(consumer, assignment);
    long count = 0;
    for (int idle = 0; open > 0 && idle < 200;) {
        rd_kafka_message_t *message = rd_kafka_consumer_poll(consumer, 100);
        if (!message) {
            idle++;
            continue;
        }
        idle = 0;
        if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(message);
            continue;
        }
        if (message->err) {
            printf("error: consume: %s\n", rd_kafka_message_errstr(message));
            rd_kafka_message_destroy(message);
            goto done;
        }
        printf("{\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"key\":", message->partition, message->offset);
        print_json_string(message->key ? message->key : "", message->key_len);
        printf(",\"headers\":{");
        rd_kafka_headers_t *headers = NULL;
        if (rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const char *name;
            const void *value;
            size_t size;
            for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
                if (i) putchar(',');
                print_json_string(name, strlen(name));
                putchar(':');
                print_json_string(value ? value : "", value ? size : 0);
            }
        }
        printf("},\"value\":%.*s}\n", (int)message->len, (const char *)message->payload);
        count++;
        if (message->offset + 1 >= ends[message->partition]) open--;
        rd_kafka_message_destroy(message);
    }
    printf("{\"end\":%ld}\n", count);
done:
    fflush(stdout);
    rd_kafka_topic_partition_list_destroy(assignment);
    free(ends);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: kafka_mock_cluster BROKERS TOPIC PARTITIONS REPLICATION\n");
        return 2;
    }
    int brokers = atoi(argv[1]);
    topic = argv[2];
    partitions = atoi(argv[3]);
    int replication = atoi(argv[4]);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);

    rd_kafka_t *holder = make_client(RD_KAFKA_PRODUCER, NULL);
    rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(holder, brokers);
    if (!cluster) {
        fprintf(stderr, "kafka_mock_cluster: cannot create the mock cluster\n");
        return 2;
    }
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster, topic, partitions, replication);
    if (err) {
        fprintf(stderr, "kafka_mock_cluster: topic %s: %s\n", topic, rd_kafka_err2str(err));
        return 2;
    }
    bootstraps = rd_kafka_mock_cluster_bootstraps(cluster);
    printf("{\"bootstraps\":\"%s\"}\n", bootstraps);
    fflush(stdout);

    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        char *words[64];
        int count = 0;
        for (char *word = strtok(line, " \t\r\n"); word && count < 64; word = strtok(NULL, " \t\r\n")) words[count++] = word;
        if (count == 0) continue;
        if (!strcmp(words[0], "quit")) break;
        if (!strcmp(words[0], "errors") && count >= 3) {
            rd_kafka_resp_err_t errors[62];
            for (int i = 2; i < count; i++) errors[i - 2] = (rd_kafka_resp_err_t)atoi(words[i]);
            rd_kafka_mock_push_request_errors_array(cluster, (int16_t)atoi(words[1]), (size_t)(count - 2), errors);
            printf("ok\n");
        } else if (!strcmp(words[0], "leader") && count == 3) {
            err = rd_kafka_mock_partition_set_leader(cluster, topic, atoi(words[1]), atoi(words[2]));
            printf(err ? "error: %s\n" : "ok\n", rd_kafka_err2str(err));
        } else if ((!strcmp(words[0], "down") || !strcmp(words[0], "up")) && count == 2) {
            err = !strcmp(words[0], "down") ? rd_kafka_mock_broker_set_down(cluster, atoi(words[1]))
                                            : rd_kafka_mock_broker_set_up(cluster, atoi(words[1]));
            printf(err ? "error: %s\n" : "ok\n", rd_kafka_err2str(err));
        } else if (!strcmp(words[0], "dump") && count == 1) {
            dump();
            continue;
        } else {
            printf("error: unknown command %s\n", words[0]);
        }
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(holder);
    return 0;
}
