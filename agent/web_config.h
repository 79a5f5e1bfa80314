// The web-config file of `tcpka run --web-config-file`: TLS, basic auth and
// response headers for the HTTP endpoint, in the format of the Prometheus
// exporter-toolkit (docs/web-configuration.md there), so one file serves
// tcpka and the node's other exporters.
//
// There is no YAML library among the dependencies, so the file is read by a
// small strict parser for the subset these files use: block mappings, block
// and flow lists of scalars, plain, single- and double-quoted scalars,
// comments. Anything else (anchors, tags, block scalars, flow mappings, tabs
// in indentation, duplicate keys) is refused with its line, as are unknown
// keys, as exporter-toolkit does.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "result.h"

namespace tcpka {

struct TlsServerConfig {
  std::string cert_file;       // PEM certificate chain, leaf first
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // PEM CAs that sign client certificates
  // NoClientCert, RequestClientCert, RequireAnyClientCert,
  // VerifyClientCertIfGiven or RequireAndVerifyClientCert (Go's names).
  std::string client_auth_type = "NoClientCert";
  std::string min_version = "TLS12";  // TLS10, TLS11, TLS12, TLS13
  std::string max_version = "TLS13";
  std::vector<std::string> cipher_suites;      // IANA names, TLS 1.2 and older
  std::vector<std::string> curve_preferences;  // CurveP256, CurveP384, CurveP521, X25519
  bool prefer_server_cipher_suites = true;
};

struct WebConfig {
  std::optional<TlsServerConfig> tls;                        // absent: plain HTTP
  std::map<std::string, std::string> basic_auth_users;       // user -> bcrypt hash; empty: no auth
  std::vector<std::pair<std::string, std::string>> headers;  // added to every response
};

// Parses the text of a web-config file. Errors read "line N: KEY: what is
// wrong". Paths are returned as written. Pure: no file is opened.
Result<WebConfig> parse_web_config(std::string_view text);

// Reads and parses the file; relative paths in it are made relative to the
// file's directory (as exporter-toolkit does). Errors start with the path.
Result<WebConfig> load_web_config(const std::string& path);

}  // namespace tcpka
