#include "http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>

namespace tcpka {

namespace {

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

using Clock = std::chrono::steady_clock;

// Waits until fd is ready for `events` or the deadline passes; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;  // ready, or POLLHUP/POLLERR: the next call says which
    if (n < 0 && errno != EINTR) return true;
  }
}

struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};

// One connection's bytes, plain or TLS, on a non-blocking socket; every call
// gives up at its deadline.
class Stream {
 public:
  Stream(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}

  // TLS only: the handshake. False on failure or timeout.
  bool handshake(Clock::time_point deadline) {
    for (;;) {
      ERR_clear_error();
      const int r = SSL_accept(ssl_);
      if (r == 1) return true;
      if (!wait_ssl(r, deadline)) return false;
    }
  }

  // > 0 bytes read, 0 end of stream or error, -1 timeout.
  ssize_t read(char* buf, size_t n, Clock::time_point deadline) {
    for (;;) {
      if (ssl_) {
        ERR_clear_error();
        size_t got = 0;
        const int r = SSL_read_ex(ssl_, buf, n, &got);
        if (r == 1) return static_cast<ssize_t>(got);
        if (!wait_ssl(r, deadline)) return timed_out_ ? -1 : 0;
        continue;
      }
      const ssize_t r = ::recv(fd_, buf, n, 0);
      if (r >= 0) return r;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return 0;
      if (!wait_for(fd_, POLLIN, deadline)) return -1;
    }
  }

  bool write_all(std::string_view data, Clock::time_point deadline) {
    while (!data.empty()) {
      if (ssl_) {
        ERR_clear_error();
        size_t put = 0;
        const int r = SSL_write_ex(ssl_, data.data(), data.size(), &put);
        if (r == 1) {
          data.remove_prefix(put);
          continue;
        }
        if (!wait_ssl(r, deadline)) return false;
        continue;
      }
      const ssize_t r = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (r > 0) {
        data.remove_prefix(static_cast<size_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return false;
      if (!wait_for(fd_, POLLOUT, deadline)) return false;
    }
    return true;
  }

 private:
  // After an SSL call returned r: waits for what it needs; false when the
  // connection is done for (error, end, or timeout, which sets timed_out_).
  bool wait_ssl(int r, Clock::time_point deadline) {
    const int e = SSL_get_error(ssl_, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
    if (!wait_for(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
      timed_out_ = true;
      return false;
    }
    return true;
  }

  int fd_;
  SSL* ssl_;
  bool timed_out_ = false;
};

std::string render(const HttpResponse& r, bool head_only,
                   const std::vector<std::pair<std::string, std::string>>& extra) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  for (const auto& [k, v] : extra) out += k + ": " + v + "\r\n";
  out += "Connection: close\r\n\r\n";
  if (!head_only) out += r.body;
  return out;
}

HttpResponse error_response(int status) {
  return HttpResponse{status, "text/plain; charset=utf-8",
                      std::to_string(status) + " " + reason_phrase(status) + "\n"};
}

}  // namespace

int parse_request_head(std::string_view head, HttpRequest* out) {
  const size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return 400;
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return 400;
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    // Not 505: a 5xx says the server failed, and alerts on error rates would
    // page someone because a client sent garbage.
    return 400;
  }
  if (target.empty() || target.front() != '/') return 400;
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f) return 400;
  }
  for (unsigned char c : method) {
    if (c < 'A' || c > 'Z') return 400;
  }
  const size_t q = target.find('?');
  out->method = std::string(method);
  out->path = std::string(target.substr(0, q));
  out->query = q == std::string_view::npos ? "" : std::string(target.substr(q + 1));
  out->authorization = std::string(header_value(head, "Authorization").value_or(""));
  if (method != "GET" && method != "HEAD") return 405;
  return 0;
}

std::optional<std::string_view> header_value(std::string_view head, std::string_view name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos) {
    pos += 2;
    const size_t eol = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == name.size() &&
        std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return v;
    }
    pos = eol;
  }
  return std::nullopt;
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const ListenAddress& addr,
                                                      std::map<std::string, HttpHandler> routes,
                                                      HttpLimits limits, HttpSecurity security) {
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->routes_ = std::move(routes);
  s->limits_ = limits;
  s->security_ = std::move(security);
  const std::string where = addr.host + " port " + std::to_string(addr.port);

  s->listen_fd_ = ::socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->listen_fd_ < 0) return Error{"socket: " + std::string(strerror(errno))};
  int one = 1;
  ::setsockopt(s->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (addr.family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(addr.port);
    inet_pton(AF_INET6, addr.host.c_str(), &a->sin6_addr);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(addr.port);
    inet_pton(AF_INET, addr.host.c_str(), &a->sin_addr);
    len = sizeof(*a);
  }
  if (::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return Error{"cannot listen on " + where + ": " + strerror(errno)};
  }
  // A deep backlog: a burst of scrapers waits in the kernel, not refused.
  if (::listen(s->listen_fd_, 1024) != 0) {
    return Error{"listen on " + where + ": " + strerror(errno)};
  }
  if (::pipe2(s->wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Error{"pipe: " + std::string(strerror(errno))};
  }
  // Port 0 asks the kernel for one; report the one we got.
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  ::getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
  s->port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  s->acceptor_ = std::thread([srv = s.get()] { srv->accept_loop(); });
  return s;
}

HttpServer::~HttpServer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    // Unblock every connection thread now instead of waiting out its timeout.
    for (const auto& [fd, slot] : open_) ::shutdown(fd, SHUT_RDWR);
  }
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [this] { return open_.empty(); });
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

void HttpServer::accept_loop() {
  for (;;) {
    pollfd pfd[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (pfd[1].revents) return;
    if (!(pfd[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      // Out of descriptors: the pending connection stays readable, so back
      // off instead of spinning on poll(); others (ECONNABORTED) are transient.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    std::unique_lock lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    if (live_ >= limits_.max_connections) {
      // Full: make room by evicting the oldest connection still sending its
      // request (or handshaking). Evicted threads leave within microseconds;
      // the hard cap below bounds them should they not.
      auto oldest = open_.end();
      for (auto it = open_.begin(); it != open_.end(); ++it) {
        if (it->second.reading && !it->second.evicted &&
            (oldest == open_.end() || it->second.accepted < oldest->second.accepted)) {
          oldest = it;
        }
      }
      if (oldest != open_.end()) {
        ::shutdown(oldest->first, SHUT_RDWR);
        oldest->second.evicted = true;
        --live_;
        evicted_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (live_ >= limits_.max_connections ||
        open_.size() >= 2 * static_cast<size_t>(limits_.max_connections)) {
      lock.unlock();
      // Every slot is answering: tell this one (plain text, even on a TLS
      // port: this is cheaper than a handshake and the client gives up either way).
      refused_.fetch_add(1, std::memory_order_relaxed);
      const std::string busy = render(error_response(503), false, {});
      (void)!::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL);
      ::close(fd);
      continue;
    }
    open_[fd] = Slot{Clock::now()};
    ++live_;
    lock.unlock();
    try {
      std::thread([this, fd] { serve(fd); }).detach();
    } catch (const std::system_error&) {
      // No thread to be had (pids limit): refuse this one, keep the agent.
      refused_.fetch_add(1, std::memory_order_relaxed);
      finish(fd);
    }
  }
}

HttpResponse HttpServer::respond(const HttpRequest& req) const {
  auto it = routes_.find(req.path);
  if (it == routes_.end()) return error_response(404);
  try {
    return it->second(req);
  } catch (const std::exception& e) {
    return HttpResponse{500, "text/plain; charset=utf-8", std::string("500 ") + e.what() + "\n"};
  }
}

void HttpServer::mark_answering(int fd) {
  std::lock_guard lock(mu_);
  open_[fd].reading = false;
}

void HttpServer::finish(int fd) {
  // Close under the lock: the destructor and the acceptor shut down fds in
  // open_, and must never see a number the kernel has already handed out again.
  std::lock_guard lock(mu_);
  auto it = open_.find(fd);
  if (!it->second.evicted) --live_;
  open_.erase(it);
  ::close(fd);
  if (open_.empty()) idle_.notify_all();
}

void HttpServer::serve(int fd) {
  const auto timeout = std::chrono::milliseconds(limits_.request_timeout_ms);
  const auto deadline = Clock::now() + timeout;
  std::shared_ptr<WebSecurity> web;
  {
    std::lock_guard lock(mu_);
    web = security_.web;
  }
  std::unique_ptr<SSL, SslDeleter> ssl;
  if (web && web->tls) {
    // Plain HTTP on a TLS port gets a plain answer saying so; a TLS record
    // starts with 0x16 (handshake), a request with a method's letter.
    char first = 0;
    if (!wait_for(fd, POLLIN, deadline) || ::recv(fd, &first, 1, MSG_PEEK) != 1) {
      finish(fd);
      return;
    }
    if (first != 0x16) {
      HttpResponse r = error_response(400);
      r.body = "400 Bad Request: this port speaks TLS (https://)\n";
      Stream(fd, nullptr).write_all(render(r, false, {}), Clock::now() + timeout);
      release_slot(fd);
      ::shutdown(fd, SHUT_WR);
      finish(fd);
      return;
    }
    ssl.reset(SSL_new(web->tls.get()));
    if (!ssl || SSL_set_fd(ssl.get(), fd) != 1 || !Stream(fd, ssl.get()).handshake(deadline)) {
      ssl.reset();
      finish(fd);
      return;
    }
  }
  Stream stream(fd, ssl.get());
  std::string head;
  int status = 0;
  char buf[4096];
  for (;;) {
    if (head.find("\r\n\r\n") != std::string::npos) break;
    if (head.size() > limits_.max_header_bytes) {
      status = 431;
      break;
    }
    const ssize_t n = stream.read(buf, sizeof(buf), deadline);
    if (n <= 0) {
      status = n == 0 ? -1 : 408;
      break;
    }
    head.append(buf, static_cast<size_t>(n));
  }
  mark_answering(fd);
  if (status >= 0) {
    HttpRequest req;
    bool head_only = false;
    if (status == 0) status = parse_request_head(head, &req);
    HttpResponse resp;
    if (status == 0 && web && web->auth && !security_.unauthenticated.count(req.path) &&
        !web->auth->check(req.authorization)) {
      status = 401;
    }
    if (status == 0) {
      head_only = req.method == "HEAD";
      resp = respond(req);
    } else {
      resp = error_response(status);
      if (status == 401) resp.headers.emplace_back("WWW-Authenticate", "Basic realm=\"tcpka\"");
    }
    static const std::vector<std::pair<std::string, std::string>> kNone;
    // A client has its answer at the last byte (Content-Length), before we
    // close: give the slot back first, so its next connection never finds
    // this one still counted. The hard cap (twice the slots) still bounds
    // the threads that are writing.
    release_slot(fd);
    stream.write_all(render(resp, head_only, web ? web->headers : kNone), Clock::now() + timeout);
  }
  if (ssl) SSL_shutdown(ssl.get());  // close_notify, without waiting for the peer's
  ssl.reset();
  release_slot(fd);
  ::shutdown(fd, SHUT_WR);
  finish(fd);
}

void HttpServer::set_web(std::shared_ptr<WebSecurity> web) {
  std::lock_guard lock(mu_);
  security_.web = std::move(web);
}

void HttpServer::release_slot(int fd) {
  std::lock_guard lock(mu_);
  auto it = open_.find(fd);
  if (it != open_.end() && !it->second.evicted) {
    --live_;
    it->second.evicted = true;  // no longer counted in live_
  }
}

}  // namespace tcpka
