// A small HTTP/1.1 server for /metrics, /healthz and friends. One thread per
// connection up to a cap, strict limits on header size and on how long a
// client may take (TLS handshake included), Connection: close after every
// answer: scrapes are short and rare, and a slow or hostile client must never
// hold up the next one. At the cap, a new connection evicts the oldest one
// still sending its request: a scraper sends its request at once, so only
// clients that trickle (slowloris) lose their place.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config.h"
#include "result.h"
#include "web_security.h"

namespace tcpka {

struct HttpRequest {
  std::string method;
  std::string path;           // without the query string
  std::string query;          // after '?', undecoded
  std::string authorization;  // the Authorization header, "" when absent
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers = {};  // more header fields
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpLimits {
  size_t max_header_bytes = 16 * 1024;
  // TLS handshake and request head, from accept; then again for the answer.
  int request_timeout_ms = 5000;
  int max_connections = 128;
};

// TLS, basic auth and extra headers (from --web-config-file), and the paths
// that answer without basic auth. With TLS the process must ignore SIGPIPE:
// OpenSSL writes with write(2), not send(MSG_NOSIGNAL) (run_agent does).
struct HttpSecurity {
  std::shared_ptr<WebSecurity> web;  // null: plain HTTP, no auth
  std::set<std::string> unauthenticated;
};

// Parses a request head ("GET /x?y HTTP/1.1\r\n..."). Returns the status to
// answer with on error (400, 405; never a 5xx), 0 when the request is acceptable.
int parse_request_head(std::string_view head, HttpRequest* out);

// The value of the first header field called `name` (case-insensitive) in a
// request head, blanks around it removed; nullopt when there is none.
std::optional<std::string_view> header_value(std::string_view head, std::string_view name);

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> start(const ListenAddress& addr,
                                                   std::map<std::string, HttpHandler> routes,
                                                   HttpLimits limits = {},
                                                   HttpSecurity security = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }

  // Connections given up on to stay bounded, since start: evicted (closed
  // unanswered, the oldest still sending its request, to make room at the
  // cap) and refused (a 503 at once: every slot was answering, or no thread
  // could be had).
  uint64_t evicted() const { return evicted_.load(std::memory_order_relaxed); }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

  // What connections accepted from now on get: TLS, basic auth and headers
  // (null: plain HTTP, no auth). One already being served keeps what it
  // started with.
  void set_web(std::shared_ptr<WebSecurity> web);

 private:
  HttpServer() = default;
  void accept_loop();
  void serve(int fd);
  HttpResponse respond(const HttpRequest& req) const;
  // Takes the connection out of the eviction candidates.
  void mark_answering(int fd);
  // Closes fd and forgets it.
  void finish(int fd);
  // The answer is written: stop counting fd against the cap (finish() follows).
  void release_slot(int fd);

  struct Slot {
    std::chrono::steady_clock::time_point accepted;
    bool reading = true;   // handshake or request head: may be evicted
    bool evicted = false;  // no longer counted in live_: evicted, or its answer is written
  };

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  uint16_t port_ = 0;
  HttpLimits limits_;
  std::map<std::string, HttpHandler> routes_;
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable idle_;
  HttpSecurity security_;
  std::map<int, Slot> open_;  // connections being served, by fd
  int live_ = 0;              // those not evicted
  std::atomic<uint64_t> evicted_{0};
  std::atomic<uint64_t> refused_{0};
  bool stopping_ = false;
};

}  // namespace tcpka
