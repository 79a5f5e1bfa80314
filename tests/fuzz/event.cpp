// Ring-buffer records of the keepalive programs (struct tka_event): decoded,
// then formatted as `tcpka watch` prints them. The input is a stream of
// records as the ring buffer hands them over, cut at every 80 bytes; the last
// one may be short, as a corrupt record would be.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  do {
    const size_t n = size < sizeof(tka_event) ? size : sizeof(tka_event);
    tcpka::Event e;
    if (tcpka::decode_event(data, n, &e)) {
      if (n < sizeof(tka_event)) std::abort();
      const std::string cgroup(reinterpret_cast<const char*>(data), n / 8);
      if (tcpka::format_text(e, cgroup).empty()) std::abort();
      const std::string j = tcpka::format_json(e, cgroup);
      if (j.front() != '{' || j.back() != '}') std::abort();
      tcpka::service_port(e);
    }
    data += n;
    size -= n;
  } while (size > 0);
  return 0;
}
