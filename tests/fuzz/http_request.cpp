// What the HTTP server parses itself: the request head, and /sockets' query
// string (the audit filter).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "audit.h"
#include "http_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  tcpka::HttpRequest req;
  const int status = tcpka::parse_request_head(text, &req);
  if (status != 0 && status != 400 && status != 405 && status != 505) std::abort();
  if (status == 0) {
    if (req.path.empty() || req.path.front() != '/') std::abort();
    if (auto f = tcpka::parse_filter_query(req.query)) {
      if (!tcpka::validate_filter(*f)) std::abort();
    }
  }
  // The query parser also sees what no request line would carry.
  if (auto f = tcpka::parse_filter_query(text); f && !tcpka::validate_filter(*f)) std::abort();
  return 0;
}
