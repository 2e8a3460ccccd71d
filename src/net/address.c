/* address.c - text addresses for Listener and Client: parsing
 * "/path", "@abstract", "host:port" and "[v6]:port" into socket addresses
 * (resolving host names), and writing socket addresses back as text.
 *
 * Python tells a Unix address from a TCP one by its type (a str or a
 * tuple); C has only text, so the forms are told apart by their shape: a
 * leading '/' or '.' is a path, a leading '@' an abstract name, a final
 * ":<digits>" a TCP port (brackets around an IPv6 host); anything else is
 * a path. An explicit family overrides the guess. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "net_internal.h"

/* parse_port reads the decimal port in s (1 to 5 digits, at most 65535). */
static int parse_port(const char *s, uint16_t *port) {
  size_t n = strlen(s);
  if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
    return MP_EINVAL;
  unsigned long v = strtoul(s, NULL, 10);
  if (v > 65535)
    return MP_EINVAL;
  *port = (uint16_t)v;
  return 0;
}

/* split_tcp splits "host:port" or "[host]:port" into host (cap bytes) and
 * port. Returns 0, or MP_EINVAL when text has not that shape. */
static int split_tcp(const char *text, char *host, size_t cap, uint16_t *port,
                     bool *bracketed) {
  const char *colon = strrchr(text, ':');
  if (colon == NULL || parse_port(colon + 1, port) != 0)
    return MP_EINVAL;
  const char *h = text;
  size_t hl = (size_t)(colon - text);
  *bracketed = false;
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
    *bracketed = true;
  }
  if (hl == 0 || hl >= cap)
    return MP_EINVAL;
  memcpy(host, h, hl);
  host[hl] = '\0';
  return 0;
}

static int parse_unix(mp__address *a, const char *text) {
  struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
  memset(un, 0, sizeof *un);
  un->sun_family = AF_UNIX;
  size_t n = strlen(text);
  if (n == 0)
    return mp__fail(MP_EINVAL, "empty Unix socket address");
  if (n >= sizeof un->sun_path)
    return mp__fail(MP_EINVAL, "Unix socket address of %zu bytes (at most %zu)",
                    n, sizeof un->sun_path - 1);
  if (text[0] == '@') {
    /* Abstract: a leading NUL and exactly the name's bytes, as Python's
     * "\0name" binds (the length, not a terminator, ends the name). */
    un->sun_path[0] = '\0';
    memcpy(un->sun_path + 1, text + 1, n - 1);
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  } else {
    memcpy(un->sun_path, text, n);
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  }
  a->family = MP_FAMILY_UNIX;
  return 0;
}

static int parse_inet(mp__address *a, const char *text, mp_family family) {
  char host[256];
  uint16_t port;
  bool bracketed;
  if (split_tcp(text, host, sizeof host, &port, &bracketed) != 0)
    return mp__fail(MP_EINVAL,
                    "TCP address '%.100s' is not host:port or [v6]:port", text);
  if (family == MP_FAMILY_DEFAULT)
    family = bracketed || strchr(host, ':') != NULL ? MP_FAMILY_INET6
                                                    : MP_FAMILY_INET;
  memset(&a->ss, 0, sizeof a->ss);
  if (family == MP_FAMILY_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    a->len = sizeof *in;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
      a->family = family;
      return 0;
    }
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    a->len = sizeof *in6;
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
      a->family = family;
      return 0;
    }
  }
  /* A name: the first address of the family asked for. */
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
  hints.ai_family = family == MP_FAMILY_INET6 ? AF_INET6 : AF_INET;
  struct addrinfo *res = NULL;
  int r = getaddrinfo(host, NULL, &hints, &res);
  if (r == EAI_MEMORY)
    return MP_ENOMEM;
  if (r != 0 || res == NULL || res->ai_addrlen > sizeof a->ss) {
    if (res != NULL)
      freeaddrinfo(res);
    return mp__fail(MP_ENOENT, "host '%.100s' does not resolve (%s)", host,
                    r != 0 ? gai_strerror(r) : "no address");
  }
  memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
  a->len = res->ai_addrlen;
  freeaddrinfo(res);
  if (a->ss.ss_family == AF_INET)
    ((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
  else
    ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
  a->family = family;
  return 0;
}

int mp__address_parse(mp__address *a, const char *text, mp_family family) {
  if (text == NULL)
    return mp__fail(MP_EINVAL, "address is NULL");
  switch (family) {
  case MP_FAMILY_UNIX:
    return parse_unix(a, text);
  case MP_FAMILY_INET:
  case MP_FAMILY_INET6:
    return parse_inet(a, text, family);
  case MP_FAMILY_DEFAULT:
    break;
  default:
    return mp__fail(MP_EINVAL, "unknown family %d", (int)family);
  }
  if (text[0] == '/' || text[0] == '.' || text[0] == '@')
    return parse_unix(a, text);
  /* A final ':' and digits make it TCP (a bad port is then an error, not
   * a file named after it). */
  const char *colon = strrchr(text, ':');
  if (colon != NULL && colon[1] != '\0' &&
      strspn(colon + 1, "0123456789") == strlen(colon + 1))
    return parse_inet(a, text, MP_FAMILY_DEFAULT);
  return parse_unix(a, text);
}

void mp__address_format(const struct sockaddr_storage *ss, socklen_t len,
                        char *out) {
  out[0] = '\0';
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    char h[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &in->sin_addr, h, sizeof h);
    snprintf(out, MP_ADDRESS_MAX, "%s:%u", h, ntohs(in->sin_port));
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    char h[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &in6->sin6_addr, h, sizeof h);
    snprintf(out, MP_ADDRESS_MAX, "[%s]:%u", h, ntohs(in6->sin6_port));
  } else if (ss->ss_family == AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)ss;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    if (len <= off)
      return; /* unnamed */
    size_t n = (size_t)len - off;
    if (n > sizeof un->sun_path)
      n = sizeof un->sun_path;
    if (un->sun_path[0] == '\0') {
      /* Abstract: '@' for the NUL; the name's bytes up to the length. */
      out[0] = '@';
      size_t k = n - 1;
      if (k > MP_ADDRESS_MAX - 2)
        k = MP_ADDRESS_MAX - 2;
      memcpy(out + 1, un->sun_path + 1, k);
      out[1 + k] = '\0';
      for (size_t i = 1; i <= k; i++)
        if (out[i] == '\0')
          out[i] = '@';
    } else {
      size_t k = strnlen(un->sun_path, n);
      if (k > MP_ADDRESS_MAX - 1)
        k = MP_ADDRESS_MAX - 1;
      memcpy(out, un->sun_path, k);
      out[k] = '\0';
    }
  }
}
