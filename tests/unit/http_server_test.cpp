#include "http_server.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

namespace tcpka {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// ---------------------------------------------------------------- parsing

TEST(ParseRequestHeadTest, GetWithoutQuery) {
  HttpRequest req;
  EXPECT_EQ(parse_request_head("GET /metrics HTTP/1.1\r\n\r\n", &req), 0);
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/metrics");
  EXPECT_EQ(req.query, "");
}

TEST(ParseRequestHeadTest, SplitsQuery) {
  HttpRequest req;
  EXPECT_EQ(parse_request_head("GET /sockets?state=close_wait HTTP/1.1\r\nHost: x\r\n\r\n", &req),
            0);
  EXPECT_EQ(req.path, "/sockets");
  EXPECT_EQ(req.query, "state=close_wait");
}

TEST(ParseRequestHeadTest, EmptyQueryAndQuestionMarksInQuery) {
  HttpRequest req;
  EXPECT_EQ(parse_request_head("GET /a? HTTP/1.1\r\n\r\n", &req), 0);
  EXPECT_EQ(req.path, "/a");
  EXPECT_EQ(req.query, "");
  EXPECT_EQ(parse_request_head("GET /a?b?c HTTP/1.0\r\n\r\n", &req), 0);
  EXPECT_EQ(req.path, "/a");
  EXPECT_EQ(req.query, "b?c");
}

TEST(ParseRequestHeadTest, HeadAndHttp10) {
  HttpRequest req;
  EXPECT_EQ(parse_request_head("HEAD /metrics HTTP/1.0\r\n\r\n", &req), 0);
  EXPECT_EQ(req.method, "HEAD");
  EXPECT_EQ(req.path, "/metrics");
}

TEST(ParseRequestHeadTest, OtherMethodsAre405) {
  HttpRequest req;
  EXPECT_EQ(parse_request_head("POST /metrics HTTP/1.1\r\n\r\n", &req), 405);
  EXPECT_EQ(parse_request_head("DELETE / HTTP/1.1\r\n\r\n", &req), 405);
  EXPECT_EQ(parse_request_head("OPTIONS /x HTTP/1.1\r\n\r\n", &req), 405);
}

TEST(ParseRequestHeadTest, TargetMustBeAbsolutePath) {
  HttpRequest req;
  EXPECT_EQ(parse_request_head("GET metrics HTTP/1.1\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("GET http://h/metrics HTTP/1.1\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("GET * HTTP/1.1\r\n\r\n", &req), 400);
}

TEST(ParseRequestHeadTest, UnsupportedVersionIs400) {
  HttpRequest req;
  EXPECT_EQ(parse_request_head("GET / HTTP/2.0\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("GET / HTTP/0.9\r\n\r\n", &req), 400);
}

TEST(ParseRequestHeadTest, GarbageIs400) {
  HttpRequest req;
  EXPECT_EQ(parse_request_head("garbage", &req), 400);
  EXPECT_EQ(parse_request_head("", &req), 400);
  EXPECT_EQ(parse_request_head("\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("GET\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("GET /\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head(" GET / HTTP/1.1\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1 extra\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("GET  / HTTP/1.1\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("GET / FTP/1.1\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("get / HTTP/1.1\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("G3T / HTTP/1.1\r\n\r\n", &req), 400);
}

TEST(ParseRequestHeadTest, ControlCharactersInTargetAre400) {
  HttpRequest req;
  EXPECT_EQ(parse_request_head("GET /a\x01z HTTP/1.1\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("GET /a\tz HTTP/1.1\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("GET /a\x7fz HTTP/1.1\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", &req), 400);
  EXPECT_EQ(parse_request_head(std::string_view("GET /a\0z HTTP/1.1\r\n\r\n", 22), &req), 400);
}

TEST(HeaderValueTest, FindsFieldsCaseInsensitivelyAndTrims) {
  const std::string head =
      "GET / HTTP/1.1\r\nHost: x\r\nauthorization:  Basic abc= \r\nX-A: 1\r\n\r\n";
  EXPECT_EQ(header_value(head, "Authorization").value_or("?"), "Basic abc=");
  EXPECT_EQ(header_value(head, "x-a").value_or("?"), "1");
  EXPECT_FALSE(header_value(head, "Host2").has_value());
  EXPECT_FALSE(header_value(head, "GET / HTTP/1.1").has_value());
  // Nothing after the blank line counts.
  EXPECT_FALSE(header_value("GET / HTTP/1.1\r\n\r\nX-B: 2\r\n", "X-B").has_value());
  HttpRequest req;
  ASSERT_EQ(parse_request_head(head, &req), 0);
  EXPECT_EQ(req.authorization, "Basic abc=");
}

// ---------------------------------------------------------------- sockets

constexpr int kClientTimeoutMs = 5000;

void set_timeout(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// A connected client socket, closed on destruction.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    set_timeout(fd_, kClientTimeoutMs);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      throw std::runtime_error(std::string("connect: ") + strerror(errno));
    }
  }
  ~Client() { close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends as much as the server takes; a server that hangs up early is fine.
  void send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

  // Everything until the server closes (or resets, or kClientTimeoutMs passes).
  std::string read_all() {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        last_errno_ = n < 0 ? errno : 0;
        return out;
      }
      out.append(buf, static_cast<size_t>(n));
    }
  }

  // Whether the server has neither sent anything nor closed (non-blocking peek).
  bool idle_and_open() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int last_errno() const { return last_errno_; }

 private:
  int fd_ = -1;
  int last_errno_ = 0;
};

struct Response {
  int status = 0;
  std::string head;  // status line and headers, without the blank line
  std::string body;
  std::string raw;
};

Response parse_response(const std::string& raw) {
  Response r;
  r.raw = raw;
  if (raw.rfind("HTTP/1.1 ", 0) == 0 && raw.size() >= 12) r.status = std::stoi(raw.substr(9, 3));
  const size_t end = raw.find("\r\n\r\n");
  if (end != std::string::npos) {
    r.head = raw.substr(0, end);
    r.body = raw.substr(end + 4);
  }
  return r;
}

Response exchange(uint16_t port, const std::string& request) {
  Client c(port);
  c.send(request);
  return parse_response(c.read_all());
}

constexpr char kMetricsBody[] = "tcpka_up 1\n";

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }

  void start(HttpLimits limits) {
    server_.reset();
    std::map<std::string, HttpHandler> routes;
    routes["/metrics"] = [](const HttpRequest&) {
      HttpResponse r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = kMetricsBody;
      return r;
    };
    routes["/echo"] = [](const HttpRequest& req) {
      HttpResponse r;
      r.body = req.method + " " + req.path + " " + req.query;
      return r;
    };
    routes["/boom"] = [](const HttpRequest&) -> HttpResponse {
      throw std::runtime_error("kaboom");
    };
    auto s = HttpServer::start(ListenAddress{"127.0.0.1", 0, AF_INET}, routes, limits);
    ASSERT_TRUE(s.ok()) << s.error();
    server_ = std::move(s.value());
    ASSERT_NE(server_->port(), 0);
  }

  uint16_t port() const { return server_->port(); }

  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, GetMetrics) {
  Response r = exchange(port(), "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_THAT(r.head, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(r.head, HasSubstr("\r\nContent-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(r.head, HasSubstr("\r\nContent-Length: " + std::to_string(sizeof(kMetricsBody) - 1)));
  EXPECT_THAT(r.head, HasSubstr("\r\nConnection: close"));
  EXPECT_EQ(r.body, kMetricsBody);
}

TEST_F(HttpServerTest, RequestSentInPieces) {
  Client c(port());
  c.send("GET /met");
  c.send("rics HTTP/1.1\r\n");
  c.send("Host: x\r\n\r\n");
  Response r = parse_response(c.read_all());
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, kMetricsBody);
}

TEST_F(HttpServerTest, HandlerSeesMethodPathAndQuery) {
  Response r = exchange(port(), "GET /echo?state=close_wait HTTP/1.0\r\n\r\n");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, "GET /echo state=close_wait");
}

TEST_F(HttpServerTest, HeadSendsHeadersOnly) {
  Response r = exchange(port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_THAT(r.head, HasSubstr("\r\nContent-Length: " + std::to_string(sizeof(kMetricsBody) - 1)));
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.raw.size(), r.head.size() + 4);
}

TEST_F(HttpServerTest, UnknownPathIs404) {
  Response r = exchange(port(), "GET /nope HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 404) << r.raw;
  EXPECT_THAT(r.head, StartsWith("HTTP/1.1 404 Not Found\r\n"));
  // The query string is not part of the route.
  EXPECT_EQ(exchange(port(), "GET /metrics?x=1 HTTP/1.1\r\n\r\n").status, 200);
  EXPECT_EQ(exchange(port(), "GET /metrics/ HTTP/1.1\r\n\r\n").status, 404);
}

TEST_F(HttpServerTest, PostIs405) {
  Response r = exchange(port(), "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(r.status, 405) << r.raw;
  EXPECT_THAT(r.body, HasSubstr("405"));
}

TEST_F(HttpServerTest, BadRequestAndBadVersionAre400) {
  EXPECT_EQ(exchange(port(), "hello there\r\n\r\n").status, 400);
  EXPECT_EQ(exchange(port(), "GET /metrics HTTP/2.0\r\n\r\n").status, 400);
}

TEST_F(HttpServerTest, HugeHeaderIs431) {
  std::string req = "GET /metrics HTTP/1.1\r\nX-Big: ";
  req += std::string(64 * 1024, 'a');
  req += "\r\n\r\n";
  Client c(port());
  c.send(req);
  Response r = parse_response(c.read_all());
  EXPECT_EQ(r.status, 431) << r.raw.substr(0, 200) << " errno " << c.last_errno();
}

TEST_F(HttpServerTest, HandlerExceptionIs500) {
  Response r = exchange(port(), "GET /boom HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 500) << r.raw;
  EXPECT_THAT(r.body, HasSubstr("kaboom"));
  // The server survives it.
  EXPECT_EQ(exchange(port(), "GET /metrics HTTP/1.1\r\n\r\n").status, 200);
}

TEST_F(HttpServerTest, SilentClientDoesNotBlockOthers) {
  Client silent(port());
  Client partial(port());
  partial.send("GET /metr");
  Response r = exchange(port(), "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, kMetricsBody);
  // Both slow clients are still connected and unanswered.
  EXPECT_TRUE(silent.idle_and_open());
  EXPECT_TRUE(partial.idle_and_open());
  // The partial one still gets its answer when it finishes.
  partial.send("ics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(parse_response(partial.read_all()).status, 200);
}

TEST_F(HttpServerTest, SlowClientGets408) {
  HttpLimits limits;
  limits.request_timeout_ms = 200;
  start(limits);
  Client c(port());
  c.send("GET /metrics HTTP/1.1\r\n");
  Response r = parse_response(c.read_all());
  EXPECT_EQ(r.status, 408) << r.raw;
}

TEST_F(HttpServerTest, ClientThatHangsUpGetsNothingAndServerGoesOn) {
  {
    Client c(port());
    c.send("GET /metr");
  }
  EXPECT_EQ(exchange(port(), "GET /metrics HTTP/1.1\r\n\r\n").status, 200);
}

TEST_F(HttpServerTest, AtTheCapTheOldestSlowClientIsEvicted) {
  HttpLimits limits;
  limits.max_connections = 2;
  start(limits);
  Client oldest(port());
  oldest.send("GET /metr");
  // Accepted in order: once this one is answered, `oldest` has been accepted.
  ASSERT_EQ(exchange(port(), "GET /metrics HTTP/1.1\r\n\r\n").status, 200);
  Client younger(port());
  younger.send("GET /metr");
  ASSERT_EQ(exchange(port(), "GET /metrics HTTP/1.1\r\n\r\n").status, 200);
  // The cap is reached by the two slow ones; a scraper evicts the oldest.
  Response r = exchange(port(), "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(oldest.read_all(), "");  // closed without an answer
  younger.send("ics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(parse_response(younger.read_all()).status, 200);
  EXPECT_EQ(server_->evicted(), 1u);
  EXPECT_EQ(server_->refused(), 0u);
}

TEST_F(HttpServerTest, AtTheCapWithEveryoneAnsweredNewConnectionsGet503) {
  HttpLimits limits;
  limits.max_connections = 1;
  server_.reset();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> entered;
  std::map<std::string, HttpHandler> routes;
  routes["/slow"] = [&](const HttpRequest&) {
    entered.set_value();
    released.wait();
    return HttpResponse{200, "text/plain", "late"};
  };
  auto s = HttpServer::start(ListenAddress{"127.0.0.1", 0, AF_INET}, routes, limits);
  ASSERT_TRUE(s.ok()) << s.error();
  server_ = std::move(s.value());
  Client busy(port());
  busy.send("GET /slow HTTP/1.1\r\n\r\n");
  entered.get_future().wait();
  // The only slot is answering, not reading: nothing to evict.
  Response r = exchange(port(), "GET /slow HTTP/1.1\r\n\r\n");
  release.set_value();
  EXPECT_EQ(r.status, 503) << r.raw;
  Response late = parse_response(busy.read_all());
  EXPECT_EQ(late.status, 200) << late.raw;
  EXPECT_EQ(late.body, "late");
  EXPECT_EQ(server_->refused(), 1u);
  EXPECT_EQ(server_->evicted(), 0u);
}

TEST_F(HttpServerTest, ManySequentialRequests) {
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(exchange(port(), "GET /metrics HTTP/1.1\r\n\r\n").status, 200) << i;
  }
}

TEST_F(HttpServerTest, DestroyWithIdleClientReturnsPromptly) {
  HttpLimits limits;
  limits.request_timeout_ms = 30000;  // only the destructor can end the idle client
  start(limits);
  Client idle(port());
  // Accepted in order: once this one is answered, the idle one is being served.
  ASSERT_EQ(exchange(port(), "GET /metrics HTTP/1.1\r\n\r\n").status, 200);

  std::promise<void> done;
  std::future<void> finished = done.get_future();
  std::thread destroyer([this, &done] {
    server_.reset();
    done.set_value();
  });
  const bool prompt = finished.wait_for(std::chrono::seconds(3)) == std::future_status::ready;
  // On failure, hang up so the destructor can finish and the test can end.
  idle.close();
  destroyer.join();
  EXPECT_TRUE(prompt) << "~HttpServer waited on an idle client";
}

TEST_F(HttpServerTest, PortInUseIsAnError) {
  auto other = HttpServer::start(ListenAddress{"127.0.0.1", port(), AF_INET}, {});
  ASSERT_FALSE(other.ok());
  EXPECT_THAT(other.error(), HasSubstr("127.0.0.1"));
  EXPECT_THAT(other.error(), HasSubstr(std::to_string(port())));
}

// Basic auth through the server, plain HTTP; bcrypt at the lowest cost.
class HttpAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    ASSERT_NE(crypt_gensalt_rn("$2b$", 4, nullptr, 0, setting, sizeof(setting)), nullptr);
    crypt_data data{};
    const char* hash = crypt_rn("s3cret", setting, &data, sizeof(data));
    ASSERT_NE(hash, nullptr);
    auto web = std::make_shared<WebSecurity>();
    web->auth = std::make_unique<BasicAuth>(std::map<std::string, std::string>{{"prom", hash}});
    web->headers = {{"X-Content-Type-Options", "nosniff"}};
    std::map<std::string, HttpHandler> routes;
    routes["/metrics"] = [](const HttpRequest&) { return HttpResponse{200, "text/plain", "m"}; };
    routes["/healthz"] = [](const HttpRequest&) { return HttpResponse{200, "text/plain", "ok"}; };
    auto s = HttpServer::start(ListenAddress{"127.0.0.1", 0, AF_INET}, routes, {},
                               HttpSecurity{web, {"/healthz"}});
    ASSERT_TRUE(s.ok()) << s.error();
    server_ = std::move(s.value());
  }
  Response get(const std::string& path, const std::string& auth) {
    return exchange(server_->port(), "GET " + path + " HTTP/1.1\r\n" +
                                         (auth.empty() ? "" : "Authorization: " + auth + "\r\n") +
                                         "\r\n");
  }
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpAuthTest, RightPasswordIsServedWithTheConfiguredHeaders) {
  Response r = get("/metrics", "Basic cHJvbTpzM2NyZXQ=");  // prom:s3cret
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, "m");
  EXPECT_THAT(r.head, HasSubstr("\r\nX-Content-Type-Options: nosniff"));
  // Again, from the cache.
  EXPECT_EQ(get("/metrics", "basic cHJvbTpzM2NyZXQ=").status, 200);
}

TEST_F(HttpAuthTest, MissingOrWrongCredentialsAre401WithAChallenge) {
  for (const std::string auth :
       {"", "Basic cHJvbTp3cm9uZw==" /* prom:wrong */, "Basic b3RoZXI6czNjcmV0" /* other:s3cret */,
        "Basic !!!", "Bearer cHJvbTpzM2NyZXQ=", "Basic cHJvbQ==" /* prom */}) {
    Response r = get("/metrics", auth);
    EXPECT_EQ(r.status, 401) << auth << "\n" << r.raw;
    EXPECT_THAT(r.head, HasSubstr("\r\nWWW-Authenticate: Basic realm=\"tcpka\""));
    EXPECT_THAT(r.body, Not(HasSubstr("m\n")));
  }
  // Unknown paths do not tell what exists either.
  EXPECT_EQ(get("/nope", "").status, 401);
}

TEST_F(HttpAuthTest, UnauthenticatedPathsAnswerWithout) {
  EXPECT_EQ(get("/healthz", "").status, 200);
}

TEST(HttpServerIpv6Test, ServesOnLoopback) {
  int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (probe < 0) GTEST_SKIP() << "no IPv6 sockets here";
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool have_v6 = ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(probe);
  if (!have_v6) GTEST_SKIP() << "no IPv6 loopback here";

  std::map<std::string, HttpHandler> routes;
  routes["/x"] = [](const HttpRequest&) { return HttpResponse{200, "text/plain", "v6"}; };
  auto s = HttpServer::start(ListenAddress{"::1", 0, AF_INET6}, routes);
  ASSERT_TRUE(s.ok()) << s.error();
  const uint16_t port = (*s)->port();
  ASSERT_NE(port, 0);

  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  set_timeout(fd, kClientTimeoutMs);
  a.sin6_port = htons(port);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << strerror(errno);
  const std::string req = "GET /x HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string raw;
  char buf[1024];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) raw.append(buf, n);
  ::close(fd);
  Response r = parse_response(raw);
  EXPECT_EQ(r.status, 200) << raw;
  EXPECT_EQ(r.body, "v6");
}

}  // namespace
}  // namespace tcpka
