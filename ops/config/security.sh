# shellcheck shell=bash
# STACK_SECURITY=sasl_ssl: Kafka's client listener speaks SASL/SCRAM-SHA-512 over TLS, the
# controller listener mutual TLS, and the StandardAuthorizer refuses what no ACL allows.
# Sourced by ops/stack.sh; every function here reads STREAMS_STACK_DATA and writes nothing outside
# <data>/security (mode 700). What is made, once per data dir:
#   ca.pem, ca.key          a CA of this stack only (openssl)
#   broker.pem, broker.p12  the brokers' certificate (CN=streams-broker, SAN 127.0.0.1 and
#                           localhost, server and client use: it is also the controller
#                           listener's client certificate), and its PKCS12 keystore
#   <user>.password         one generated password per SCRAM user (mode 600), created in the
#                           KRaft metadata when the storage is formatted (`--add-scram`)
# Users: admin (inter-broker, operators, ACLs), registry, connect: super users; worker and device:
# what the ACLs (`streams acls apply`) allow them, nothing else.

SECURITY_USERS=(admin registry connect worker device)
SECURITY_SUPER_USERS="User:admin;User:registry;User:connect;User:CN=streams-broker"
SCRAM_MECHANISM=SCRAM-SHA-512

security_enabled() { [ "${STACK_SECURITY:-plaintext}" = sasl_ssl ]; }

security_dir() { echo "$STREAMS_STACK_DATA/security"; }

# A new random secret in file $1 (mode 600) unless it exists; hex, so that it needs no quoting
# in properties files or JAAS strings.
security_secret() {
  [ -s "$1" ] && return 0
  (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "$1.tmp") && mv -f "$1.tmp" "$1"
}

security_password() { cat "$(security_dir)/$1.password"; }

# The CA, the brokers' certificate and keystore, and every user's password (idempotent).
security_init() {
  local dir; dir="$(security_dir)"
  mkdir -p "$dir" && chmod 700 "$dir"
  local user
  for user in "${SECURITY_USERS[@]}" keystore; do security_secret "$dir/$user.password"; done
  command -v openssl >/dev/null || die "openssl not found (STACK_SECURITY=sasl_ssl makes its certificates with it)"
  if [ ! -s "$dir/ca.pem" ]; then
    log "security: making a CA and the brokers' certificate in $dir"
    (umask 077
     openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 825 -keyout "$dir/ca.key" -out "$dir/ca.pem" \
       -subj "/CN=streams-local-ca" -addext "basicConstraints=critical,CA:TRUE" \
       -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null) || die "openssl: CA failed"
    rm -f "$dir/broker.pem" "$dir/broker.p12"
  fi
  if [ ! -s "$dir/broker.p12" ]; then
    (umask 077
     printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
       "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" > "$dir/broker.ext"
     openssl req -new -nodes -newkey rsa:2048 -sha256 -keyout "$dir/broker.key" -out "$dir/broker.csr" \
       -subj "/CN=streams-broker" 2>/dev/null \
     && openssl x509 -req -sha256 -days 825 -in "$dir/broker.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
       -CAcreateserial -out "$dir/broker.pem" -extfile "$dir/broker.ext" 2>/dev/null \
     && openssl pkcs12 -export -in "$dir/broker.pem" -inkey "$dir/broker.key" -certfile "$dir/ca.pem" \
       -name broker -out "$dir/broker.p12" -passout "file:$dir/keystore.password") \
      || die "openssl: the brokers' certificate failed"
    rm -f "$dir/broker.csr" "$dir/broker.ext"
  fi
}

# `--add-scram` arguments for `kafka-storage format`: every user with its password. (They are
# on the format command's argv for the second it runs; the files stay the only copy at rest.)
security_scram_args() {
  local user
  for user in "${SECURITY_USERS[@]}"; do
    printf -- '--add-scram\n%s=[name=%s,password=%s]\n' "$SCRAM_MECHANISM" "$user" "$(security_password "$user")"
  done
}

scram_jaas() { # $1 user
  printf 'org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";' \
    "$1" "$(security_password "$1")"
}

# Lines appended to a node's server.properties (a later key overrides the base file's).
# $1 client port, $2 controller port.
kafka_security_properties() {
  local dir; dir="$(security_dir)"
  cat <<EOF
# --- STACK_SECURITY=sasl_ssl (ops/config/security.sh)
listeners=SASL_SSL://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2
advertised.listeners=SASL_SSL://127.0.0.1:$1
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=$SCRAM_MECHANISM
sasl.mechanism.inter.broker.protocol=$SCRAM_MECHANISM
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$(scram_jaas admin)
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/broker.p12
ssl.keystore.password=$(security_password keystore)
ssl.key.password=$(security_password keystore)
ssl.truststore.type=PEM
ssl.truststore.location=$dir/ca.pem
# the controller quorum: nodes prove who they are with the brokers' certificate
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=$SECURITY_SUPER_USERS
allow.everyone.if.no.acl.found=false
EOF
}

# A Java client's security settings as user $1, each key behind prefix $2 (Connect's worker:
# "", "producer.", "consumer.", "admin."; the registry: "apicurio.kafka.common.").
java_client_security_properties() {
  local user="$1" p="${2:-}" dir; dir="$(security_dir)"
  cat <<EOF
${p}security.protocol=SASL_SSL
${p}sasl.mechanism=$SCRAM_MECHANISM
${p}sasl.jaas.config=$(scram_jaas "$user")
${p}ssl.truststore.type=PEM
${p}ssl.truststore.location=$dir/ca.pem
${p}ssl.endpoint.identification.algorithm=https
EOF
}

# What a client of this stack sets (streams.config.Settings), for `stack.sh env`: no password,
# the file that holds it.
security_client_env() { # $1 user
  local dir; dir="$(security_dir)"
  cat <<EOF
KAFKA_SECURITY_PROTOCOL=SASL_SSL
KAFKA_SASL_MECHANISM=$SCRAM_MECHANISM
KAFKA_SASL_USERNAME=$1
KAFKA_SASL_PASSWORD_FILE=$dir/$1.password
KAFKA_SSL_CA_LOCATION=$dir/ca.pem
EOF
}
