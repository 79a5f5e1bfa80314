// What the HTTP server needs of a web-config file, ready to use: the OpenSSL
// server context (certificate, key, client CAs, versions, ciphers) and the
// basic-auth check.
#pragma once

#include <openssl/ssl.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "result.h"
#include "web_config.h"

namespace tcpka {

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// Builds the server context: loads and checks the certificate, the key (and
// that they match) and the client CAs. Errors name the config key.
Result<SslCtxPtr> make_tls_context(const TlsServerConfig& cfg);

// Basic auth against bcrypt hashes (libxcrypt's crypt_rn: $2a$, $2b$, $2y$).
// Verification takes ~100 ms at cost 10, so successes are remembered by
// SHA-256 of user and password, as exporter-toolkit does; an unknown user
// costs a bcrypt of a dummy hash of the same cost, so the time of an answer
// does not say whether the user exists. At most one bcrypt runs at a time:
// a flood of wrong passwords costs one core, and a scraper whose password is
// remembered does not wait for it.
class BasicAuth {
 public:
  explicit BasicAuth(std::map<std::string, std::string> users);
  // `header` is the value of the Authorization header ("" when absent).
  bool check(std::string_view header);

 private:
  std::vector<std::pair<std::string, std::string>> users_;
  std::string dummy_hash_;
  std::mutex bcrypt_mu_;
  std::mutex cache_mu_;
  std::vector<std::string> cache_;  // SHA-256 digests of user '\0' password
};

// Strict RFC 4648 base64 (with padding); nullopt-like false on anything else.
bool base64_decode(std::string_view in, std::string* out);

// Everything the server applies to each connection and answer.
struct WebSecurity {
  SslCtxPtr tls;                    // null: plain HTTP
  std::unique_ptr<BasicAuth> auth;  // null: no basic auth
  std::vector<std::pair<std::string, std::string>> headers;

  // Reads the file and builds the above; errors start with the path.
  static Result<std::shared_ptr<WebSecurity>> load(const std::string& path);
};

// The files a web-config file makes the endpoint depend on: the file itself
// and the certificate, key and client CA files it names (resolved as load()
// does), or the file alone when it does not parse.
std::vector<std::string> web_config_files(const std::string& path);

// What the files are now: device, inode, size and modification time of each
// (or that it is missing). stat() follows symlinks, so the symlink swap by
// which Kubernetes updates a mounted Secret shows as a new inode. Equal
// stamps: nothing to read again.
std::string file_stamps(const std::vector<std::string>& files);

// Whether a web-config file, or a file it names, changed since it was last
// read. The files are those it named at that read, so checking is a stat()
// of each and no parse; a change to the file itself brings a read, and with
// it the files it names now.
class WebConfigWatch {
 public:
  explicit WebConfigWatch(std::string path = {}) : path_(std::move(path)) {}
  // Loads the file and those it names as they are now. Their stamps are
  // taken first, so a change made while loading still shows to changed().
  Result<std::shared_ptr<WebSecurity>> load() {
    files_ = web_config_files(path_);
    stamps_ = file_stamps(files_);
    return WebSecurity::load(path_);
  }
  bool changed() const { return !path_.empty() && file_stamps(files_) != stamps_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;  // empty: no web-config file
  std::vector<std::string> files_;
  std::string stamps_;
};

}  // namespace tcpka
