// Records of the socket iterator (struct tka_sock_rec), as AuditBpf::scan()
// cuts them from the bytes it reads: decoded, deduplicated, filtered and
// written as JSON and as the table of `tcpka audit`.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "audit.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // Real kernels run at 100, 250, 300 or 1000 Hz.
  static constexpr unsigned kHz[] = {100, 250, 300, 1000};
  const unsigned hz = kHz[data[0] % 4];
  ++data, --size;
  std::vector<tcpka::AuditRow> rows;
  for (size_t at = 0; at + sizeof(tka_sock_rec) <= size; at += sizeof(tka_sock_rec)) {
    tka_sock_rec rec;
    std::memcpy(&rec, data + at, sizeof(rec));
    // Cgroup paths are names anyone may create: any bytes.
    rows.push_back(tcpka::decode_rec(rec, hz, [&](uint64_t id) {
      return std::string(reinterpret_cast<const char*>(&id), id % 9);
    }));
  }
  rows = tcpka::dedupe(std::move(rows));
  tcpka::AuditFilter filter;
  filter.state = "established";
  filter.min_age = 1;
  for (const auto& r : rows) tcpka::matches(r, filter);
  const std::string json = tcpka::rows_to_json(rows);
  if (json.front() != '[') std::abort();
  const std::string table = tcpka::rows_to_table(rows);
  // One line per row and the header line: names must not break lines.
  size_t lines = 0;
  for (char c : table) lines += c == '\n';
  if (lines != rows.size() + 1) std::abort();
  return 0;
}
