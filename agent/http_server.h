// A small HTTP/1.1 server for /metrics, /healthz and friends. One thread per
// connection up to a cap, strict limits on header size and on how long a
// client may take, Connection: close after every answer: scrapes are short
// and rare, and a slow or hostile client must never hold up the next one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "config.h"
#include "result.h"

namespace tcpka {

struct HttpRequest {
  std::string method;
  std::string path;   // without the query string
  std::string query;  // after '?', undecoded
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpLimits {
  size_t max_header_bytes = 16 * 1024;
  int request_timeout_ms = 5000;  // whole request head, from accept
  int max_connections = 64;
};

// Parses a request head ("GET /x?y HTTP/1.1\r\n..."). Returns the status to
// answer with on error (400, 405, 505), 0 when the request is acceptable.
int parse_request_head(std::string_view head, HttpRequest* out);

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> start(const ListenAddress& addr,
                                                   std::map<std::string, HttpHandler> routes,
                                                   HttpLimits limits = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }

 private:
  HttpServer() = default;
  void accept_loop();
  void serve(int fd);
  HttpResponse respond(const HttpRequest& req) const;

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  uint16_t port_ = 0;
  HttpLimits limits_;
  std::map<std::string, HttpHandler> routes_;
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable idle_;
  std::set<int> open_;  // connections being served
  bool stopping_ = false;
};

}  // namespace tcpka
