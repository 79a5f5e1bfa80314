// A file under /tmp that lives as long as the object: config files the tests
// write, rewrite between SIGHUPs, and hand to the agent by path.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

namespace tcpka::testing_common {

class TempFile {
 public:
  explicit TempFile(const std::string& prefix = "/tmp/tcpka-test-") {
    std::string path = prefix + "XXXXXX";
    const int fd = mkstemp(path.data());
    if (fd < 0) throw std::runtime_error("mkstemp " + path);
    close(fd);
    path_ = path;
  }
  ~TempFile() { unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  void write(const std::string& text) const { std::ofstream(path_, std::ios::trunc) << text; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace tcpka::testing_common
