#include "web_config.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tcpka {

namespace {

// ------------------------------------------------------------ YAML subset

struct Entry;

struct Node {
  enum Kind { kNull, kScalar, kList, kMap };
  Kind kind = kNull;
  int line = 0;
  std::string scalar;          // kScalar
  std::vector<Node> items;     // kList (scalars only)
  std::vector<Entry> entries;  // kMap, in file order
};

// A struct, not std::pair: a pair may not hold the still incomplete Node.
struct Entry {
  std::string key;
  Node value;
};

struct Line {
  int no = 0;
  int indent = 0;
  std::string_view text;  // from the first non-blank character
};

// Messages quote keys and values from the file, and a double-quoted string may
// hold "\n" or "\t": shown raw, a key could split the one-line log message
// or forge a second one. Control bytes are written as escapes instead; what
// this returns holds none, so wrapping a message again changes nothing.
Error at(int line, const std::string& what) {
  std::string shown;
  for (const char c : what) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      shown += c;
    } else if (c == '\n') {
      shown += "\\n";
    } else if (c == '\t') {
      shown += "\\t";
    } else {
      static const char kHex[] = "0123456789abcdef";
      shown += "\\x";
      shown += kHex[u >> 4];
      shown += kHex[u & 0xf];
    }
  }
  return Error{"line " + std::to_string(line) + ": " + shown};
}

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && (is_space(s.back()) || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// What may follow a value on its line: blanks, and a comment after a blank.
bool only_comment(std::string_view rest) {
  size_t i = 0;
  while (i < rest.size() && is_space(rest[i])) ++i;
  return i == rest.size() || (rest[i] == '#' && i > 0);
}

// One scalar at the start of s. `flow` ends plain scalars at ',' and ']'.
// *used is how much of s it took; the caller checks what follows.
Result<Node> scalar(std::string_view s, int line, bool flow, size_t* used) {
  Node n;
  n.line = line;
  n.kind = Node::kScalar;
  if (s.empty()) {
    n.kind = Node::kNull;
    *used = 0;
    return n;
  }
  const char q = s[0];
  if (q == '\'') {
    for (size_t i = 1; i < s.size(); ++i) {
      if (s[i] != '\'') {
        n.scalar += s[i];
      } else if (i + 1 < s.size() && s[i + 1] == '\'') {
        n.scalar += '\'';
        ++i;
      } else {
        *used = i + 1;
        return n;
      }
    }
    return at(line, "unterminated single-quoted string (strings must end on their line)");
  }
  if (q == '"') {
    for (size_t i = 1; i < s.size(); ++i) {
      const char c = s[i];
      if (c == '"') {
        *used = i + 1;
        return n;
      }
      if (c != '\\') {
        n.scalar += c;
        continue;
      }
      if (++i == s.size()) break;
      switch (s[i]) {
        case '\\':
        case '"':
        case '/':
          n.scalar += s[i];
          break;
        case 'n':
          n.scalar += '\n';
          break;
        case 't':
          n.scalar += '\t';
          break;
        default:
          return at(line, std::string("unsupported escape '\\") + s[i] + "' in a quoted string");
      }
    }
    return at(line, "unterminated double-quoted string (strings must end on their line)");
  }
  if (std::string_view("&*!|>%@`{}[]").find(q) != std::string_view::npos) {
    return at(line, std::string("'") + q +
                        "' starts a YAML feature this file format does not use (anchors, "
                        "aliases, tags, block scalars, flow mappings); quote the value");
  }
  if ((q == '-' || q == '?' || q == ':') && (s.size() == 1 || is_space(s[1]))) {
    return at(line, std::string("unexpected '") + q + "'");
  }
  size_t end = 0;
  for (; end < s.size(); ++end) {
    const char c = s[end];
    if (c == '#' && end > 0 && is_space(s[end - 1])) break;
    if (flow && (c == ',' || c == ']' || c == '[' || c == '{' || c == '}')) break;
    if (c == ':' && (end + 1 == s.size() || is_space(s[end + 1]))) {
      return at(line,
                "a mapping cannot start inside a value here (quote the value if the "
                "colon belongs to it)");
    }
  }
  n.scalar = std::string(trim_right(s.substr(0, end)));
  *used = n.scalar.size();  // the blanks before a comment stay for the caller
  if (n.scalar == "~" || n.scalar == "null" || n.scalar == "Null" || n.scalar == "NULL") {
    n.kind = Node::kNull;
    n.scalar.clear();
  }
  return n;
}

// A whole value on one line: a scalar, a flow list of scalars, or {}.
Result<Node> inline_value(std::string_view s, int line) {
  Node n;
  n.line = line;
  size_t used = 0;
  if (!s.empty() && s[0] == '[') {
    n.kind = Node::kList;
    size_t i = 1;
    auto skip = [&] {
      while (i < s.size() && is_space(s[i])) ++i;
    };
    skip();
    if (i < s.size() && s[i] == ']') {
      ++i;
    } else {
      for (;;) {
        skip();
        auto item = scalar(s.substr(i), line, true, &used);
        if (!item) return item;
        if (item->kind != Node::kScalar) return at(line, "empty item in a flow list");
        n.items.push_back(std::move(*item));
        i += used;
        skip();
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        if (i < s.size() && s[i] == ']') {
          ++i;
          break;
        }
        return at(line, "a flow list [...] must end on its line, with only scalars in it");
      }
    }
    if (!only_comment(s.substr(i))) return at(line, "unexpected text after ']'");
    return n;
  }
  if (!s.empty() && s[0] == '{') {
    size_t i = 1;
    while (i < s.size() && is_space(s[i])) ++i;
    if (i < s.size() && s[i] == '}' && only_comment(s.substr(i + 1))) {
      n.kind = Node::kMap;
      return n;
    }
    return at(line, "flow mappings {...} are not supported; use one key per line");
  }
  auto v = scalar(s, line, false, &used);
  if (!v) return v;
  if (!only_comment(s.substr(used))) return at(line, "unexpected text after the value");
  return v;
}

class Parser {
 public:
  explicit Parser(std::vector<Line> lines) : lines_(std::move(lines)) {}

  Result<Node> document() {
    if (lines_.empty()) return Node{Node::kMap, 1, {}, {}, {}};
    if (lines_[0].indent != 0) return at(lines_[0].no, "the document must start in column 1");
    auto n = block(0);
    if (!n) return n;
    if (i_ < lines_.size()) return at(lines_[i_].no, "unexpected indentation");
    if (n->kind != Node::kMap) return at(n->line, "the file must be a mapping (key: value)");
    return n;
  }

 private:
  static bool is_item(std::string_view t) { return t == "-" || t.rfind("- ", 0) == 0; }

  Result<Node> block(int indent) { return is_item(lines_[i_].text) ? list(indent) : map(indent); }

  Result<Node> list(int indent) {
    Node n;
    n.kind = Node::kList;
    n.line = lines_[i_].no;
    while (i_ < lines_.size() && lines_[i_].indent == indent && is_item(lines_[i_].text)) {
      const Line& l = lines_[i_];
      std::string_view rest = l.text.substr(1);
      while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
      if (rest.empty() || rest[0] == '#') {
        return at(l.no, "empty list item (lists hold scalars only)");
      }
      if (rest[0] == '[' || is_item(rest)) return at(l.no, "nested lists are not supported");
      auto item = inline_value(rest, l.no);
      if (!item) return item;
      if (item->kind != Node::kScalar) return at(l.no, "lists hold scalars only");
      n.items.push_back(std::move(*item));
      ++i_;
    }
    return n;
  }

  Result<Node> map(int indent) {
    Node n;
    n.kind = Node::kMap;
    n.line = lines_[i_].no;
    while (i_ < lines_.size() && lines_[i_].indent == indent) {
      const Line& l = lines_[i_];
      if (is_item(l.text)) return at(l.no, "a list item where a key was expected");
      std::string key;
      size_t k = 0;
      if (l.text[0] == '"' || l.text[0] == '\'') {
        auto q = scalar(l.text, l.no, false, &k);
        if (!q) return q;
        key = q->scalar;
      } else {
        if (l.text[0] == '?') return at(l.no, "complex keys ('?') are not supported");
        while (k < l.text.size() &&
               !(l.text[k] == ':' && (k + 1 == l.text.size() || is_space(l.text[k + 1])))) {
          ++k;
        }
        key = std::string(trim_right(l.text.substr(0, k)));
        if (key.find_first_of("&*!|>%@`{}[]#") == 0) {
          return at(l.no, "'" + key + "' is not a plain key");
        }
      }
      if (k >= l.text.size() || l.text[k] != ':' ||
          (k + 1 < l.text.size() && !is_space(l.text[k + 1]))) {
        return at(l.no, "expected 'key: value'");
      }
      if (key.empty()) return at(l.no, "empty key");
      for (const auto& e : n.entries) {
        if (e.key == key) return at(l.no, key + ": duplicate key");
      }
      std::string_view rest = l.text.substr(k + 1);
      while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
      ++i_;
      Node value;
      if (!rest.empty() && rest[0] != '#') {
        auto v = inline_value(rest, l.no);
        if (!v) return at(l.no, key + ": " + v.error().substr(v.error().find(": ") + 2));
        value = std::move(*v);
      } else if (i_ < lines_.size() &&
                 (lines_[i_].indent > indent ||
                  (lines_[i_].indent == indent && is_item(lines_[i_].text)))) {
        auto v = block(lines_[i_].indent);
        if (!v) return v;
        value = std::move(*v);
        value.line = l.no;  // errors about the whole value point at its key
      } else {
        value.kind = Node::kNull;
        value.line = l.no;
      }
      n.entries.push_back(Entry{std::move(key), std::move(value)});
      if (i_ < lines_.size() && lines_[i_].indent > indent) {
        return at(lines_[i_].no, "unexpected indentation");
      }
    }
    return n;
  }

  std::vector<Line> lines_;
  size_t i_ = 0;
};

Result<Node> parse_yaml(std::string_view text) {
  std::vector<Line> lines;
  int no = 0;
  bool seen_content = false;
  while (!text.empty()) {
    ++no;
    const size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    raw = trim_right(raw);
    for (unsigned char c : raw) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) return at(no, "control character in the file");
    }
    size_t ind = 0;
    while (ind < raw.size() && raw[ind] == ' ') ++ind;
    if (ind < raw.size() && raw[ind] == '\t') {
      return at(no, "tab in indentation (YAML indents with spaces)");
    }
    std::string_view t = raw.substr(ind);
    if (t.empty() || t[0] == '#') continue;
    if (ind == 0 && (t == "---" || t.rfind("--- ", 0) == 0 || t.rfind("%", 0) == 0)) {
      if (t[0] == '%') return at(no, "YAML directives are not supported");
      if (seen_content) return at(no, "only one YAML document is allowed");
      if (!only_comment(t.substr(3))) return at(no, "unexpected text after '---'");
      continue;
    }
    if (ind == 0 && t == "...") return at(no, "'...' is not supported");
    seen_content = true;
    lines.push_back(Line{no, static_cast<int>(ind), t});
  }
  return Parser(std::move(lines)).document();
}

// ---------------------------------------------------------------- schema

Error bad(const Node& n, const std::string& key, const std::string& what) {
  return at(n.line, key + ": " + what);
}

Result<std::string> string_of(const Node& n, const std::string& key) {
  if (n.kind == Node::kNull) return std::string();
  if (n.kind != Node::kScalar) return bad(n, key, "must be a string");
  return n.scalar;
}

Result<bool> bool_of(const Node& n, const std::string& key) {
  if (n.kind == Node::kScalar) {
    const std::string& s = n.scalar;
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  return bad(n, key, "must be true or false");
}

Result<std::vector<std::string>> list_of(const Node& n, const std::string& key) {
  std::vector<std::string> out;
  if (n.kind == Node::kNull) return out;
  if (n.kind != Node::kList) return bad(n, key, "must be a list");
  for (const Node& item : n.items) out.push_back(item.scalar);
  return out;
}

Result<void> map_of(const Node& n, const std::string& key) {
  if (n.kind == Node::kNull || n.kind == Node::kMap) return {};
  return bad(n, key, "must be a mapping");
}

const std::vector<std::string_view> kAuthTypes = {"NoClientCert", "RequestClientCert",
                                                  "RequireAnyClientCert", "VerifyClientCertIfGiven",
                                                  "RequireAndVerifyClientCert"};

int version_rank(std::string_view v) {
  if (v == "TLS10") return 10;
  if (v == "TLS11") return 11;
  if (v == "TLS12") return 12;
  if (v == "TLS13") return 13;
  return 0;
}

// $2a$, $2b$ or $2y$, a two-digit cost 04..31, $, 22 salt and 31 hash
// characters of bcrypt's base64 alphabet.
bool is_bcrypt(std::string_view h) {
  if (h.size() != 60 || h[0] != '$' || h[1] != '2' || h[3] != '$' || h[6] != '$') return false;
  if (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') return false;
  if (!std::isdigit(static_cast<unsigned char>(h[4])) ||
      !std::isdigit(static_cast<unsigned char>(h[5]))) {
    return false;
  }
  const int cost = (h[4] - '0') * 10 + (h[5] - '0');
  if (cost < 4 || cost > 31) return false;
  return std::all_of(h.begin() + 7, h.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '/';
  });
}

bool printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f; });
}

Result<void> tls_section(const Node& n, WebConfig* out) {
  const std::string p = "tls_server_config.";
  TlsServerConfig t;
  bool any = false;
  for (const Entry& e1 : n.entries) {
    const std::string& k = e1.key;
    const Node& v = e1.value;
    const std::string key = p + k;
    Result<void> r;
    auto str = [&](std::string* dst) -> Result<void> {
      auto s = string_of(v, key);
      if (!s) return Error{s.error()};
      *dst = *s;
      any = any || !dst->empty();
      return {};
    };
    if (k == "cert_file") {
      r = str(&t.cert_file);
    } else if (k == "key_file") {
      r = str(&t.key_file);
    } else if (k == "client_ca_file") {
      r = str(&t.client_ca_file);
    } else if (k == "client_auth_type") {
      r = str(&t.client_auth_type);
      if (r && t.client_auth_type.empty()) t.client_auth_type = "NoClientCert";
      if (r &&
          std::find(kAuthTypes.begin(), kAuthTypes.end(), t.client_auth_type) == kAuthTypes.end()) {
        return bad(v, key,
                   "'" + t.client_auth_type +
                       "' is not NoClientCert, RequestClientCert, RequireAnyClientCert, "
                       "VerifyClientCertIfGiven or RequireAndVerifyClientCert");
      }
    } else if (k == "min_version" || k == "max_version") {
      std::string* dst = k == "min_version" ? &t.min_version : &t.max_version;
      r = str(dst);
      if (r && dst->empty()) *dst = k == "min_version" ? "TLS12" : "TLS13";
      if (r && version_rank(*dst) == 0) {
        return bad(v, key, "'" + *dst + "' is not TLS10, TLS11, TLS12 or TLS13");
      }
    } else if (k == "cipher_suites" || k == "curve_preferences") {
      auto l = list_of(v, key);
      if (!l) return Error{l.error()};
      (k == "cipher_suites" ? t.cipher_suites : t.curve_preferences) = *l;
      any = any || !l->empty();
    } else if (k == "prefer_server_cipher_suites") {
      auto b = bool_of(v, key);
      if (!b) return Error{b.error()};
      t.prefer_server_cipher_suites = *b;
    } else if (k == "cert" || k == "key" || k == "client_ca") {
      return bad(v, key, "inline PEM is not supported by tcpka; use " + k + "_file");
    } else if (k == "client_allowed_sans") {
      return bad(v, key, "not supported by tcpka");
    } else {
      return bad(v, key, "unknown key");
    }
    if (!r) return r;
  }
  if (!any) return {};  // an empty section: plain HTTP, as exporter-toolkit
  if (t.cert_file.empty()) return bad(n, "tls_server_config", "cert_file is missing");
  if (t.key_file.empty()) return bad(n, "tls_server_config", "key_file is missing");
  if (!t.client_ca_file.empty() && t.client_auth_type == "NoClientCert") {
    return bad(n, "tls_server_config",
               "client_ca_file is set but client_auth_type is NoClientCert");
  }
  if (t.client_ca_file.empty() && (t.client_auth_type == "VerifyClientCertIfGiven" ||
                                   t.client_auth_type == "RequireAndVerifyClientCert")) {
    return bad(n, "tls_server_config", t.client_auth_type + " needs client_ca_file");
  }
  if (version_rank(t.min_version) > version_rank(t.max_version)) {
    return bad(n, "tls_server_config", "min_version is above max_version");
  }
  out->tls = std::move(t);
  return {};
}

Result<void> http_section(const Node& n, WebConfig* out) {
  for (const Entry& e2 : n.entries) {
    const std::string& k = e2.key;
    const Node& v = e2.value;
    const std::string key = "http_server_config." + k;
    if (k == "http2") {
      auto b = bool_of(v, key);
      if (!b) return Error{b.error()};
      if (*b) return bad(v, key, "tcpka serves HTTP/1.1 only; remove the key or set false");
      continue;
    }
    if (k != "headers") return bad(v, key, "unknown key");
    if (auto m = map_of(v, key); !m) return m;
    for (const Entry& e3 : v.entries) {
      const std::string& name = e3.key;
      const Node& value = e3.value;
      const std::string hkey = key + "." + name;
      auto s = string_of(value, hkey);
      if (!s) return Error{s.error()};
      std::string lower = *s;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (name == "X-Content-Type-Options") {
        if (!s->empty() && lower != "nosniff") return bad(value, hkey, "must be nosniff");
      } else if (name == "X-Frame-Options") {
        if (!s->empty() && lower != "deny" && lower != "sameorigin") {
          return bad(value, hkey, "must be deny or sameorigin");
        }
      } else if (name != "Content-Security-Policy" && name != "X-XSS-Protection" &&
                 name != "Strict-Transport-Security") {
        return bad(value, hkey,
                   "not a header that can be set (Content-Security-Policy, X-Frame-Options, "
                   "X-Content-Type-Options, X-XSS-Protection, Strict-Transport-Security)");
      }
      if (!printable(*s)) return bad(value, hkey, "control character in the value");
      if (!s->empty()) out->headers.emplace_back(name, *s);
    }
  }
  return {};
}

Result<void> users_section(const Node& n, WebConfig* out) {
  for (const Entry& e4 : n.entries) {
    const std::string& user = e4.key;
    const Node& v = e4.value;
    const std::string key = "basic_auth_users." + user;
    auto hash = string_of(v, key);
    if (!hash) return Error{hash.error()};
    if (user.find(':') != std::string::npos || !printable(user)) {
      return bad(v, key, "a user name cannot hold ':' or control characters");
    }
    if (!is_bcrypt(*hash)) {
      return bad(v, key,
                 "not a bcrypt hash ($2y$10$ and 53 more characters, as `htpasswd -nBC 10 \"\" "
                 "| tr -d ':\\n'` prints)");
    }
    out->basic_auth_users[user] = *hash;
  }
  return {};
}

}  // namespace

Result<WebConfig> parse_web_config(std::string_view text) {
  auto doc = parse_yaml(text);
  if (!doc) return Error{doc.error()};
  WebConfig out;
  for (const auto& [k, v] : doc->entries) {
    Result<void> r;
    if (k == "tls_server_config" || k == "http_server_config" || k == "basic_auth_users") {
      r = map_of(v, k);
      if (r) {
        r = k == "tls_server_config"    ? tls_section(v, &out)
            : k == "http_server_config" ? http_section(v, &out)
                                        : users_section(v, &out);
      }
    } else if (k == "rate_limit") {
      r = bad(v, k, "not supported by tcpka");
    } else {
      r = bad(v, k, "unknown key");
    }
    if (!r) return Error{r.error()};
  }
  return out;
}

Result<WebConfig> load_web_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"web config file " + path + ": cannot be read"};
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error{"web config file " + path + ": cannot be read"};
  auto cfg = parse_web_config(ss.str());
  if (!cfg) return Error{"web config file " + path + ": " + cfg.error()};
  if (cfg->tls) {
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    for (std::string* f : {&cfg->tls->cert_file, &cfg->tls->key_file, &cfg->tls->client_ca_file}) {
      if (!f->empty() && (*f)[0] != '/') *f = (dir / *f).string();
    }
  }
  return cfg;
}

}  // namespace tcpka
