#include "http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

void write_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client went away or stalled past SO_SNDTIMEO
    off += static_cast<size_t>(n);
  }
}

std::string render(const HttpResponse& r, bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
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
    return version.rfind("HTTP/", 0) == 0 ? 505 : 400;
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
  if (method != "GET" && method != "HEAD") return 405;
  return 0;
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const ListenAddress& addr,
                                                      std::map<std::string, HttpHandler> routes,
                                                      HttpLimits limits) {
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->routes_ = std::move(routes);
  s->limits_ = limits;
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
  if (::listen(s->listen_fd_, 128) != 0) {
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
    for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
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
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors: the pending connection stays readable, so back
      // off instead of spinning on poll(); others (ECONNABORTED) are transient.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    timeval tv{limits_.request_timeout_ms / 1000, (limits_.request_timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    std::unique_lock lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    if (static_cast<int>(open_.size()) >= limits_.max_connections) {
      lock.unlock();
      write_all(fd, render(error_response(503), false));
      ::close(fd);
      continue;
    }
    open_.insert(fd);
    lock.unlock();
    try {
      std::thread([this, fd] { serve(fd); }).detach();
    } catch (const std::system_error&) {
      // No thread to be had (pids limit): refuse this one, keep the agent.
      std::lock_guard relock(mu_);
      open_.erase(fd);
      ::close(fd);
      if (open_.empty()) idle_.notify_all();
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

void HttpServer::serve(int fd) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(limits_.request_timeout_ms);
  std::string head;
  int status = 0;
  char buf[4096];
  for (;;) {
    if (head.find("\r\n\r\n") != std::string::npos) break;
    if (head.size() > limits_.max_header_bytes) {
      status = 431;
      break;
    }
    // SO_RCVTIMEO bounds one read; the deadline bounds a trickling client.
    if (clock::now() >= deadline) {
      status = 408;
      break;
    }
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      status = n == 0 ? -1 : 408;
      break;
    }
    head.append(buf, static_cast<size_t>(n));
  }
  if (status >= 0) {
    HttpRequest req;
    bool head_only = false;
    if (status == 0) status = parse_request_head(head, &req);
    HttpResponse resp;
    if (status == 0) {
      head_only = req.method == "HEAD";
      resp = respond(req);
    } else {
      resp = error_response(status);
    }
    write_all(fd, render(resp, head_only));
  }
  ::shutdown(fd, SHUT_WR);
  // Close under the lock: the destructor shuts down every fd in open_, and
  // must never see a number the kernel has already handed out again.
  std::lock_guard lock(mu_);
  open_.erase(fd);
  ::close(fd);
  if (open_.empty()) idle_.notify_all();
}

}  // namespace tcpka
