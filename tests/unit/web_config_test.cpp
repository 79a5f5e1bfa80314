#include "web_config.h"

#include <crypt.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "web_security.h"

namespace tcpka {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// A real bcrypt hash of `password`, cost 04 (fast) unless said otherwise.
std::string bcrypt(const std::string& password, int cost = 4, const char* prefix = "$2b$") {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn(prefix, cost, nullptr, 0, setting, sizeof(setting)), nullptr);
  crypt_data data{};
  const char* h = crypt_rn(password.c_str(), setting, &data, sizeof(data));
  EXPECT_NE(h, nullptr);
  return h ? h : "";
}

const std::string kHash = "$2y$10$AO682uIu7AqVkCppQrVoWOw.D3TFOhBvbXdTJuHI5hhDyQy6sQgJa";

// ----------------------------------------------------------------- parsing

TEST(WebConfigTest, FullExample) {
  const std::string text =
      "# tcpka web config\n"
      "---\n"
      "tls_server_config:\n"
      "  cert_file: /etc/tcpka/tls.crt   # the chain\n"
      "  key_file: \"/etc/tcpka/tls.key\"\n"
      "  client_auth_type: RequireAndVerifyClientCert\n"
      "  client_ca_file: 'ca.pem'\n"
      "  min_version: TLS13\n"
      "  max_version: TLS13\n"
      "  cipher_suites:\n"
      "    - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n"
      "    - 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'\n"
      "  curve_preferences: [X25519, CurveP256]\n"
      "  prefer_server_cipher_suites: false\n"
      "\n"
      "http_server_config:\n"
      "  http2: false\n"
      "  headers:\n"
      "    X-Content-Type-Options: nosniff\n"
      "    X-Frame-Options: deny\n"
      "    Content-Security-Policy: \"default-src 'self'\"\n"
      "    Strict-Transport-Security: max-age=31536000\n"
      "basic_auth_users:\n"
      "  prometheus: " +
      kHash +
      "\n"
      "  'other user': '" +
      kHash + "'\n";
  auto c = parse_web_config(text);
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c->tls.has_value());
  EXPECT_EQ(c->tls->cert_file, "/etc/tcpka/tls.crt");
  EXPECT_EQ(c->tls->key_file, "/etc/tcpka/tls.key");
  EXPECT_EQ(c->tls->client_ca_file, "ca.pem");
  EXPECT_EQ(c->tls->client_auth_type, "RequireAndVerifyClientCert");
  EXPECT_EQ(c->tls->min_version, "TLS13");
  EXPECT_THAT(c->tls->cipher_suites, ElementsAre("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                                                 "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"));
  EXPECT_THAT(c->tls->curve_preferences, ElementsAre("X25519", "CurveP256"));
  EXPECT_FALSE(c->tls->prefer_server_cipher_suites);
  EXPECT_THAT(c->headers, ElementsAre(Pair("X-Content-Type-Options", "nosniff"),
                                      Pair("X-Frame-Options", "deny"),
                                      Pair("Content-Security-Policy", "default-src 'self'"),
                                      Pair("Strict-Transport-Security", "max-age=31536000")));
  EXPECT_THAT(c->basic_auth_users,
              ElementsAre(Pair("other user", kHash), Pair("prometheus", kHash)));
}

TEST(WebConfigTest, EmptyFileAndEmptySectionsMeanPlainHttpWithoutAuth) {
  for (const std::string text :
       {"", "# nothing\n", "---\n", "tls_server_config:\nbasic_auth_users: {}\n",
        "tls_server_config:\n  cert_file: ''\nhttp_server_config:\n  headers:\n"}) {
    auto c = parse_web_config(text);
    ASSERT_TRUE(c.ok()) << text << ": " << c.error();
    EXPECT_FALSE(c->tls.has_value()) << text;
    EXPECT_TRUE(c->basic_auth_users.empty()) << text;
    EXPECT_TRUE(c->headers.empty()) << text;
  }
}

TEST(WebConfigTest, QuotingAndComments) {
  auto c = parse_web_config(
      "tls_server_config:   # comment after a key\n"
      "  cert_file: 'it''s#not a comment'\n"
      "  key_file: \"a\\\\b\\\"c\\td\"\n"
      "  cipher_suites: [ 'x, y' , \"z\" ]  # after a flow list\n");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->tls->cert_file, "it's#not a comment");
  EXPECT_EQ(c->tls->key_file, "a\\b\"c\td");
  EXPECT_THAT(c->tls->cipher_suites, ElementsAre("x, y", "z"));
  // A block list may sit at the key's own indentation, as YAML allows.
  auto d = parse_web_config(
      "tls_server_config:\n  cert_file: a\n  key_file: b\n"
      "  curve_preferences:\n  - X25519\n  min_version: TLS12\n");
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_THAT(d->tls->curve_preferences, ElementsAre("X25519"));
  // A # inside a plain value is part of it.
  auto e = parse_web_config("tls_server_config:\n  cert_file: a#b\n  key_file: b\n");
  ASSERT_TRUE(e.ok()) << e.error();
  EXPECT_EQ(e->tls->cert_file, "a#b");
}

// Each refusal names the line and the key.
struct Refusal {
  std::string text;
  std::string expect;
};

TEST(WebConfigTest, RefusesWithLineAndKey) {
  const std::string tls = "tls_server_config:\n  cert_file: c\n  key_file: k\n";
  const std::vector<Refusal> cases = {
      {"tls_server_config:\n  cert_file: c\n  key_file: k\nbogus: 1\n",
       "line 4: bogus: unknown key"},
      {tls + "  certfile: x\n", "line 4: tls_server_config.certfile: unknown key"},
      {tls + "  client_auth_type: Always\n",
       "line 4: tls_server_config.client_auth_type: 'Always'"},
      {tls + "  min_version: TLS14\n", "line 4: tls_server_config.min_version: 'TLS14' is not"},
      {tls + "  min_version: TLS13\n  max_version: TLS12\n", "min_version is above max_version"},
      {"tls_server_config:\n  cert_file: c\n", "line 1: tls_server_config: key_file is missing"},
      {"tls_server_config:\n  key_file: k\n", "line 1: tls_server_config: cert_file is missing"},
      {tls + "  client_ca_file: ca\n",
       "client_ca_file is set but client_auth_type is NoClientCert"},
      {tls + "  client_auth_type: RequireAndVerifyClientCert\n",
       "RequireAndVerifyClientCert needs client_ca_file"},
      {tls + "  cert: x\n", "line 4: tls_server_config.cert: inline PEM is not supported"},
      {tls + "  cert: |\n", "line 4: cert: '|' starts a YAML feature"},
      {tls + "  client_allowed_sans: [a]\n",
       "line 4: tls_server_config.client_allowed_sans: not "
       "supported"},
      {tls + "  prefer_server_cipher_suites: yes\n",
       "line 4: tls_server_config.prefer_server_"
       "cipher_suites: must be true or false"},
      {tls + "  cipher_suites: x\n", "line 4: tls_server_config.cipher_suites: must be a list"},
      {tls + "  cert_file: d\n", "line 4: cert_file: duplicate key"},
      {"tls_server_config:\n  cert_file: [a]\n",
       "line 2: tls_server_config.cert_file: must be a "
       "string"},
      {"tls_server_config: x\n", "line 1: tls_server_config: must be a mapping"},
      {"basic_auth_users:\n  u: notahash\n", "line 2: basic_auth_users.u: not a bcrypt hash"},
      {"basic_auth_users:\n  u: $2y$03$AO682uIu7AqVkCppQrVoWOw.D3TFOhBvbXdTJuHI5hhDyQy6sQgJa\n",
       "line 2: basic_auth_users.u: not a bcrypt hash"},
      {"basic_auth_users:\n  'a:b': " + kHash + "\n", "line 2: basic_auth_users.a:b: a user name"},
      {"http_server_config:\n  headers:\n    Server: x\n",
       "line 3: http_server_config.headers.Server: not a header that can be set"},
      {"http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
       "line 3: http_server_config.headers.X-Frame-Options: must be deny or sameorigin"},
      {"http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n", "must be nosniff"},
      {"http_server_config:\n  headers:\n    X-XSS-Protection: \"1\\nSet-Cookie: a\"\n",
       "line 3: http_server_config.headers.X-XSS-Protection: control character"},
      {"http_server_config:\n  http2: true\n",
       "line 2: http_server_config.http2: tcpka serves "
       "HTTP/1.1 only"},
      {"http_server_config:\n  tls: x\n", "line 2: http_server_config.tls: unknown key"},
      {"rate_limit:\n  burst: 1\n", "line 1: rate_limit: not supported"},
      // The YAML subset.
      {"tls_server_config:\n\tcert_file: c\n", "line 2: tab in indentation"},
      {"a: &x 1\n", "line 1: a: '&' starts a YAML feature"},
      {"a: *x\n", "line 1: a: '*' starts"},
      {"a: !!str 1\n", "line 1: a: '!' starts"},
      {"tls_server_config:\n  cert: |\n    ---\n", "line 2: cert: '|' starts"},
      {"a: >\n", "line 1: a: '>' starts"},
      {"a: {b: 1}\n", "line 1: a: flow mappings"},
      {"a: 'x\n", "line 1: a: unterminated single-quoted"},
      {"a: \"x\n", "line 1: a: unterminated double-quoted"},
      {"a: \"\\u0041\"\n", "line 1: a: unsupported escape"},
      {"a: [x\n", "line 1: a: a flow list [...] must end on its line"},
      {"a: [[x]]\n", "line 1: a: '[' starts"},
      {"a:\n  - - x\n", "line 2: nested lists"},
      {"a:\n  - b: c\n", "line 2: a mapping cannot start inside a value"},
      {"a: b: c\n", "line 1: a: a mapping cannot start inside a value"},
      {"a:\n  b: 1\n    c: 2\n", "line 3: unexpected indentation"},
      {"a:\n    b: 1\n  c: 2\n", "line 3: unexpected indentation"},
      {"  a: 1\n", "line 1: the document must start in column 1"},
      {"- a\n", "line 1: the file must be a mapping"},
      {"just text\n", "line 1: expected 'key: value'"},
      {"a:b\n", "line 1: expected 'key: value'"},
      {"a: 1\n---\nb: 2\n", "line 2: only one YAML document"},
      {"? a\n", "line 1: complex keys"},
      {"a: 'x' y\n", "line 1: a: unexpected text after the value"},
      {std::string("a: x\0y\n", 7), "line 1: control character"},
      {"a:\n  -\n", "line 2: empty list item"},
      // Keys echoed in a message keep it on one line (found by fuzz.web_config).
      {"\"x\\ny\": 1\n", "line 1: x\\ny: unknown key"},
      {"\"x\\ty\": {\n", "line 1: x\\ty: flow mappings"},
      {"tls_server_config:\n  \"a\\nb\": 1\n", "line 2: tls_server_config.a\\nb: unknown key"},
  };
  for (const auto& c : cases) {
    auto r = parse_web_config(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_THAT(r.error(), HasSubstr(c.expect)) << c.text;
    EXPECT_EQ(r.error().find_first_of("\n\r\t"), std::string::npos) << r.error();
  }
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tcpka-webcfg-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ + "/" + name) << text;
    return path_ + "/" + name;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(WebConfigTest, LoadMakesPathsRelativeToTheFileAndNamesTheFile) {
  TempDir dir;
  const std::string p =
      dir.write("web.yml", "tls_server_config:\n  cert_file: tls.crt\n  key_file: /abs/tls.key\n");
  auto c = load_web_config(p);
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->tls->cert_file, dir.path() + "/tls.crt");
  EXPECT_EQ(c->tls->key_file, "/abs/tls.key");

  const std::string bad = dir.write("bad.yml", "\n\nbasic_auth_users:\n  u: x\n");
  auto b = load_web_config(bad);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error(), "web config file " + bad +
                           ": line 4: basic_auth_users.u: not a bcrypt hash ($2y$10$ and 53 more "
                           "characters, as `htpasswd -nBC 10 \"\" | tr -d ':\\n'` prints)");
  auto missing = load_web_config(dir.path() + "/nope.yml");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error(), HasSubstr(dir.path() + "/nope.yml: cannot be read"));
}

TEST(WebSecurityTest, MissingCertificateNamesKeyAndPath) {
  TempDir dir;
  const std::string p =
      dir.write("web.yml", "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n");
  auto s = WebSecurity::load(p);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error(), HasSubstr("web config file " + p +
                                   ": tls_server_config.cert_file: "
                                   "cannot load '" +
                                   dir.path() + "/tls.crt'"));
}

TEST(WebSecurityTest, NoTlsNoAuthLoadsEmpty) {
  TempDir dir;
  auto s = WebSecurity::load(dir.write("web.yml",
                                       "http_server_config:\n  headers:\n"
                                       "    X-Frame-Options: deny\n"));
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ((*s)->tls, nullptr);
  EXPECT_EQ((*s)->auth, nullptr);
  EXPECT_EQ((*s)->headers.size(), 1u);
}

// ---------------------------------------------------------------- auth

TEST(Base64Test, DecodesStrictly) {
  std::string out;
  ASSERT_TRUE(base64_decode("cHJvbTpzM2NyZXQ=", &out));
  EXPECT_EQ(out, "prom:s3cret");
  ASSERT_TRUE(base64_decode("YQ==", &out));
  EXPECT_EQ(out, "a");
  ASSERT_TRUE(base64_decode("YWI=", &out));
  EXPECT_EQ(out, "ab");
  ASSERT_TRUE(base64_decode("", &out));
  EXPECT_EQ(out, "");
  for (const char* bad : {"YQ=", "Y===", "YQ=a", "Y Q=", "YQ==YQ==", "Y!==", "=YQ="}) {
    EXPECT_FALSE(base64_decode(bad, &out)) << bad;
  }
}

std::string basic(const std::string& user_pass) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < user_pass.size(); i += 3) {
    const uint32_t n = (uint8_t(user_pass[i]) << 16) | (uint8_t(user_pass[i + 1]) << 8) |
                       uint8_t(user_pass[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += k[(n >> s) & 63];
  }
  if (i + 1 == user_pass.size()) {
    const uint32_t n = uint8_t(user_pass[i]) << 16;
    out += std::string{k[n >> 18], k[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == user_pass.size()) {
    const uint32_t n = (uint8_t(user_pass[i]) << 16) | (uint8_t(user_pass[i + 1]) << 8);
    out += std::string{k[n >> 18], k[(n >> 12) & 63], k[(n >> 6) & 63], '='};
  }
  return "Basic " + out;
}

TEST(BasicAuthTest, ChecksPasswordsOfEachUser) {
  std::string y = bcrypt("pw-b");
  y[2] = 'y';  // htpasswd writes $2y$; libxcrypt reads it as $2b$
  BasicAuth auth({{"a", bcrypt("pw-a")}, {"b", y}});
  EXPECT_TRUE(auth.check(basic("a:pw-a")));
  EXPECT_TRUE(auth.check(basic("b:pw-b")));
  EXPECT_FALSE(auth.check(basic("a:pw-b")));
  EXPECT_FALSE(auth.check(basic("b:pw-a")));
  EXPECT_FALSE(auth.check(basic("c:pw-a")));
  EXPECT_FALSE(auth.check(basic("a:")));
  EXPECT_FALSE(auth.check(basic("a")));
  EXPECT_FALSE(auth.check(basic(":pw-a")));
  EXPECT_FALSE(auth.check(basic(std::string("a:pw-a\0x", 8))));
  EXPECT_FALSE(auth.check(""));
  EXPECT_FALSE(auth.check("Basic"));
  EXPECT_FALSE(auth.check("Digest " + basic("a:pw-a").substr(6)));
  // Passwords may hold colons: the user ends at the first.
  BasicAuth colon({{"u", bcrypt("x:y")}});
  EXPECT_TRUE(colon.check(basic("u:x:y")));
}

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(BasicAuthTest, SuccessesAreCachedAndUnknownUsersCostABcryptToo) {
  BasicAuth auth({{"a", bcrypt("pw", 10)}});
  double first = 0, cached = 1e9, wrong = 1e9, unknown = 1e9;
  first = seconds_of([&] { EXPECT_TRUE(auth.check(basic("a:pw"))); });
  for (int i = 0; i < 3; ++i) {
    cached = std::min(cached, seconds_of([&] { EXPECT_TRUE(auth.check(basic("a:pw"))); }));
    wrong = std::min(wrong, seconds_of([&] { EXPECT_FALSE(auth.check(basic("a:nope"))); }));
    unknown = std::min(unknown, seconds_of([&] { EXPECT_FALSE(auth.check(basic("zz:pw"))); }));
  }
  // bcrypt at cost 10 takes tens of ms; a cache hit takes microseconds.
  EXPECT_GT(first, 0.01);
  EXPECT_LT(cached, first / 10) << "first " << first << " s, cached " << cached << " s";
  // A wrong password is not cached, and an unknown user costs about as much.
  EXPECT_GT(wrong, first / 3);
  EXPECT_GT(unknown, wrong / 2) << "unknown " << unknown << " s, wrong " << wrong << " s";
}

}  // namespace
}  // namespace tcpka
