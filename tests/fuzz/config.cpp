// `tcpka run --config FILE`: CLI11's TOML/INI reader, the mapping of its
// items to flags, and every check parse_args() makes before anything is
// loaded (listen address, numbers, keepalive policies and their cgroups,
// which it only stats). The file is a memfd, read through /proc/self/fd.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "cli.h"

namespace {

const std::string& config_path() {
  static const std::string path = [] {
    const int fd = memfd_create("tcpka-fuzz-config", 0);
    if (fd < 0) std::abort();
    return "/proc/self/fd/" + std::to_string(fd);
  }();
  return path;
}

void write_config(const uint8_t* data, size_t size) {
  const int fd = std::stoi(config_path().substr(sizeof("/proc/self/fd/") - 1));
  if (ftruncate(fd, 0) != 0) std::abort();
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  write_config(data, size);
  const char* argv[] = {"tcpka", "run", "--config", config_path().c_str(), nullptr};
  tcpka::Invocation inv;
  std::string out, err;
  const int rc = tcpka::parse_args(4, argv, &inv, &out, &err);
  // -1: go on; 0: --help (help = true in the file); 2: refused.
  if (rc != -1 && rc != 0 && rc != 2) std::abort();
  // A refusal is one line on stderr (README, "Commands").
  if (rc == 2 && (err.empty() || err.find('\n') != err.size() - 1)) std::abort();
  if (rc != 2 && !err.empty()) std::abort();
  // What was accepted passes validate() again (SIGHUP re-reads it the same way).
  if (rc == -1 && !tcpka::validate(inv.run)) std::abort();
  return 0;
}
