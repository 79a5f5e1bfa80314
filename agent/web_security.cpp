#include "web_security.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

namespace tcpka {

namespace {

// The last OpenSSL error of this thread, and the queue emptied.
std::string ssl_error() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    out = buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

int tls_version(const std::string& v) {
  if (v == "TLS10") return TLS1_VERSION;
  if (v == "TLS11") return TLS1_1_VERSION;
  if (v == "TLS12") return TLS1_2_VERSION;
  return TLS1_3_VERSION;
}

// Go names the cipher suites by their IANA names, which OpenSSL knows as the
// "standard name" of its ciphers; returns OpenSSL's list for them.
Result<std::string> openssl_ciphers(SSL_CTX* ctx, const std::vector<std::string>& iana) {
  std::string out;
  STACK_OF(SSL_CIPHER)* all = SSL_CTX_get_ciphers(ctx);
  for (const std::string& want : iana) {
    const SSL_CIPHER* found = nullptr;
    for (int i = 0; i < sk_SSL_CIPHER_num(all); ++i) {
      const SSL_CIPHER* c = sk_SSL_CIPHER_value(all, i);
      const char* std_name = SSL_CIPHER_standard_name(c);
      if (std_name && want == std_name) found = c;
    }
    if (!found || std::strcmp(SSL_CIPHER_get_version(found), "TLSv1.3") == 0) {
      return Error{"tls_server_config.cipher_suites: '" + want +
                   "' is not a TLS 1.2 cipher suite this OpenSSL offers"};
    }
    out += (out.empty() ? "" : ":") + std::string(SSL_CIPHER_get_name(found));
  }
  return out;
}

Result<std::string> openssl_groups(const std::vector<std::string>& curves) {
  std::string out;
  for (const std::string& c : curves) {
    std::string g = c == "CurveP256"   ? "P-256"
                    : c == "CurveP384" ? "P-384"
                    : c == "CurveP521" ? "P-521"
                    : c == "X25519"    ? "X25519"
                                       : "";
    if (g.empty()) {
      return Error{"tls_server_config.curve_preferences: '" + c +
                   "' is not CurveP256, CurveP384, CurveP521 or X25519"};
    }
    out += (out.empty() ? "" : ":") + g;
  }
  return out;
}

// Asks for a certificate but takes any (RequestClientCert, RequireAnyClientCert).
int accept_any(int, X509_STORE_CTX*) {
  return 1;
}

std::string sha256(std::string_view a, std::string_view b) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* c = EVP_MD_CTX_new();
  EVP_DigestInit_ex(c, EVP_sha256(), nullptr);
  EVP_DigestUpdate(c, a.data(), a.size());
  EVP_DigestUpdate(c, "", 1);  // the NUL between the two
  EVP_DigestUpdate(c, b.data(), b.size());
  EVP_DigestFinal_ex(c, md, &len);
  EVP_MD_CTX_free(c);
  return std::string(reinterpret_cast<char*>(md), len);
}

bool same(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

Result<SslCtxPtr> make_tls_context(const TlsServerConfig& cfg) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return Error{"TLS context: " + ssl_error()};
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, tls_version(cfg.min_version));
  SSL_CTX_set_max_proto_version(c, tls_version(cfg.max_version));
  // Renegotiation is a cheap way to make the server do expensive work.
  SSL_CTX_set_options(c,
                      SSL_OP_NO_RENEGOTIATION |
                          (cfg.prefer_server_cipher_suites ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  if (SSL_CTX_use_certificate_chain_file(c, cfg.cert_file.c_str()) != 1) {
    return Error{"tls_server_config.cert_file: cannot load '" + cfg.cert_file +
                 "': " + ssl_error()};
  }
  // Also refuses a key that does not belong to the certificate ("key values mismatch").
  if (SSL_CTX_use_PrivateKey_file(c, cfg.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Error{"tls_server_config.key_file: cannot load '" + cfg.key_file + "': " + ssl_error()};
  }
  if (!cfg.client_ca_file.empty()) {
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(cfg.client_ca_file.c_str());
    if (!names || SSL_CTX_load_verify_locations(c, cfg.client_ca_file.c_str(), nullptr) != 1) {
      if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
      return Error{"tls_server_config.client_ca_file: cannot load '" + cfg.client_ca_file +
                   "': " + ssl_error()};
    }
    SSL_CTX_set_client_CA_list(c, names);
  }
  const std::string& a = cfg.client_auth_type;
  if (a == "RequestClientCert") {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, accept_any);
  } else if (a == "RequireAnyClientCert") {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
  } else if (a == "VerifyClientCertIfGiven") {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  } else if (a == "RequireAndVerifyClientCert") {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
  // Resumed sessions of verified clients need a context id.
  static const unsigned char kSid[] = "tcpka";
  SSL_CTX_set_session_id_context(c, kSid, sizeof(kSid) - 1);
  if (!cfg.cipher_suites.empty()) {
    auto list = openssl_ciphers(c, cfg.cipher_suites);
    if (!list) return Error{list.error()};
    if (SSL_CTX_set_cipher_list(c, list->c_str()) != 1) {
      return Error{"tls_server_config.cipher_suites: " + ssl_error()};
    }
  }
  if (!cfg.curve_preferences.empty()) {
    auto groups = openssl_groups(cfg.curve_preferences);
    if (!groups) return Error{groups.error()};
    if (SSL_CTX_set1_groups_list(c, groups->c_str()) != 1) {
      return Error{"tls_server_config.curve_preferences: " + ssl_error()};
    }
  }
  return ctx;
}

bool base64_decode(std::string_view in, std::string* out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  out->clear();
  if (in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const int pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=' && in[i + 3] == '=') : 0;
    int v[4];
    for (int j = 0; j < 4 - pad; ++j) {
      v[j] = val(in[i + j]);
      if (v[j] < 0) return false;
    }
    const uint32_t n =
        (v[0] << 18) | (v[1] << 12) | (pad < 2 ? v[2] << 6 : 0) | (pad < 1 ? v[3] : 0);
    out->push_back(static_cast<char>(n >> 16));
    if (pad < 2) out->push_back(static_cast<char>((n >> 8) & 0xff));
    if (pad < 1) out->push_back(static_cast<char>(n & 0xff));
  }
  return true;
}

BasicAuth::BasicAuth(std::map<std::string, std::string> users) {
  int cost = 10;
  for (auto& [u, h] : users) {
    cost = std::max(cost, (h[4] - '0') * 10 + (h[5] - '0'));
    users_.emplace_back(sha256(u, ""), std::move(h));
  }
  // A setting string ($2b$NN$ and a salt) is a valid "hash" to compare
  // against: crypt_rn does the full work for it and never matches it.
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", cost, nullptr, 0, setting, sizeof(setting))) {
    dummy_hash_ = setting;
  }
}

bool BasicAuth::check(std::string_view header) {
  const size_t sp = header.find(' ');
  if (sp == std::string_view::npos) return false;
  std::string scheme(header.substr(0, sp));
  for (char& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string_view b64 = header.substr(sp + 1);
  while (!b64.empty() && b64.front() == ' ') b64.remove_prefix(1);
  std::string decoded;
  if (scheme != "basic" || !base64_decode(b64, &decoded)) return false;
  const size_t colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  const std::string user = decoded.substr(0, colon), password = decoded.substr(colon + 1);
  // crypt reads a C string: a NUL would cut the password short.
  if (password.find('\0') != std::string::npos) return false;

  const std::string key = sha256(user, password);
  {
    std::lock_guard lock(cache_mu_);
    bool hit = false;
    for (const auto& k : cache_) hit = same(k, key) || hit;  // no early exit
    if (hit) return true;
  }
  // Every user is compared, in constant time, by digest.
  const std::string user_digest = sha256(user, "");
  const std::string* hash = &dummy_hash_;
  bool known = false;
  for (const auto& [digest, h] : users_) {
    if (same(digest, user_digest)) {
      hash = &h;
      known = true;
    }
  }
  bool ok = false;
  {
    std::lock_guard lock(bcrypt_mu_);
    auto data = std::make_unique<crypt_data>();
    const char* out = crypt_rn(password.c_str(), hash->c_str(), data.get(), sizeof(*data));
    ok = known && out && same(out, *hash);
  }
  if (ok) {
    std::lock_guard lock(cache_mu_);
    if (cache_.size() >= 256) cache_.clear();  // bounded; the next scrape pays bcrypt again
    cache_.push_back(key);
  }
  return ok;
}

Result<std::shared_ptr<WebSecurity>> WebSecurity::load(const std::string& path) {
  auto cfg = load_web_config(path);
  if (!cfg) return Error{cfg.error()};
  auto sec = std::make_shared<WebSecurity>();
  if (cfg->tls) {
    auto ctx = make_tls_context(*cfg->tls);
    if (!ctx) return Error{"web config file " + path + ": " + ctx.error()};
    sec->tls = std::move(ctx.value());
  }
  if (!cfg->basic_auth_users.empty()) {
    sec->auth = std::make_unique<BasicAuth>(std::move(cfg->basic_auth_users));
  }
  sec->headers = std::move(cfg->headers);
  return sec;
}

std::vector<std::string> web_config_files(const std::string& path) {
  std::vector<std::string> files = {path};
  if (auto cfg = load_web_config(path); cfg && cfg->tls) {
    for (const std::string* f :
         {&cfg->tls->cert_file, &cfg->tls->key_file, &cfg->tls->client_ca_file}) {
      if (!f->empty()) files.push_back(*f);
    }
  }
  return files;
}

std::string file_stamps(const std::vector<std::string>& files) {
  std::string out;
  for (const auto& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) {
      out += f + " missing\n";
      continue;
    }
    out += f + ' ' + std::to_string(st.st_dev) + ' ' + std::to_string(st.st_ino) + ' ' +
           std::to_string(st.st_size) + ' ' + std::to_string(st.st_mtim.tv_sec) + '.' +
           std::to_string(st.st_mtim.tv_nsec) + '\n';
  }
  return out;
}

}  // namespace tcpka
