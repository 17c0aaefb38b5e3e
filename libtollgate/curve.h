/* curve.h - CURVE key pairs for the ZeroMQ sockets between proxyd and
 * accountd: reading a secret key file, making a pair, and setting a
 * socket up as CURVE server (accountd) or client (proxyd, test tools). */
#ifndef TG_CURVE_H
#define TG_CURVE_H

#include <stddef.h>

struct curve_config;

#define CURVE_Z85_LEN 40 /* a 32-byte key as Z85 text */

struct curve_keypair {
    char public_key[CURVE_Z85_LEN + 1];
    char secret_key[CURVE_Z85_LEN + 1];
};

/* Reads the secret key (Z85, one line; '#' lines are comments) from path and
 * derives its public key. Refused when the file is not a regular file or
 * group or others may read it. -1 with a message in err. */
int curve_read_secret(const char *path, struct curve_keypair *kp, char *err, size_t errlen);

/* Makes a new pair: PREFIX.key (the secret, mode 0600) and PREFIX.pub (the
 * public key, 0644); neither may exist yet. Public key copied to public_key. */
int curve_keygen(const char *prefix, char public_key[CURVE_Z85_LEN + 1], char *err,
                 size_t errlen);

/* Sets sock up as a CURVE server with kp, its clients checked by the ZAP
 * handler of its context (accountd/zap.c); with none answering, every
 * client is refused (ZMQ_ZAP_ENFORCE_DOMAIN). Before zmq_bind. */
int curve_set_server(void *sock, const struct curve_keypair *kp, char *err, size_t errlen);

/* Binds sock at endpoint, first made a CURVE server with kp unless kp is
 * NULL (`curve: off`). -1 with err. */
int curve_bind(void *sock, const struct curve_keypair *kp, const char *endpoint, char *err,
               size_t errlen);

/* Sets sock up as a CURVE client with kp, trusting only server_public_key.
 * Before each zmq_connect (ZeroMQ applies it to later connects). */
int curve_set_client(void *sock, const struct curve_keypair *kp, const char *server_public_key,
                     char *err, size_t errlen);

/* Connects sock to endpoints[i] of accountd instance i: as a CURVE client
 * with the pair of tollgate.proxyd.curve_secret_key_file, trusting only
 * instance i's server key; plain with `curve: off`. -1 with err. */
struct config;
int curve_connect_instance(void *sock, const struct config *cfg, char *const *endpoints,
                           size_t i, char *err, size_t errlen);

/* The ZAP domain accountd's sockets use. */
#define CURVE_ZAP_DOMAIN "tollgate"

#endif
