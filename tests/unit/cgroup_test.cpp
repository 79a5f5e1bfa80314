#include "cgroup.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace tcpka {
namespace {

namespace fs = std::filesystem;

TEST(Cgroup2MountTest, HybridHierarchy) {
  const std::string mountinfo =
      "22 27 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
      "23 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw\n"
      "27 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro\n"
      "30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
      "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 "
      "cgroup2 rw,nsdelegate\n"
      "32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup "
      "cgroup rw,xattr,name=systemd\n"
      "35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup "
      "cgroup rw,memory\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/sys/fs/cgroup/unified");
}

TEST(Cgroup2MountTest, PureV2) {
  const std::string mountinfo =
      "24 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
      "25 24 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw\n"
      "26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 "
      "rw,nsdelegate,memory_recursiveprot\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/sys/fs/cgroup");
}

TEST(Cgroup2MountTest, OptionalFieldsBeforeSeparator) {
  const std::string mountinfo =
      "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
      "40 24 0:35 / /run/cg2 rw,relatime shared:5 master:1 - cgroup2 none rw\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/run/cg2");
}

TEST(Cgroup2MountTest, EscapedSpaceInMountPoint) {
  const std::string mountinfo =
      "40 24 0:35 / /mnt/my\\040cgroups rw,relatime shared:5 - cgroup2 cgroup2 rw\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/mnt/my cgroups");
}

TEST(Cgroup2MountTest, OtherEscapes) {
  // Tab, backslash, and an escape at the very end of the field.
  const std::string mountinfo = "40 24 0:35 / /mnt/a\\011b\\134c\\040 rw - cgroup2 cgroup2 rw\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/mnt/a\tb\\c ");
}

TEST(Cgroup2MountTest, LastLineWithoutNewline) {
  const std::string mountinfo =
      "24 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
      "26 25 0:23 / /cg rw - cgroup2 cgroup2 rw";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/cg");
}

TEST(Cgroup2MountTest, FirstOfSeveral) {
  const std::string mountinfo =
      "26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
      "50 40 0:23 / /container/sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/sys/fs/cgroup");
}

TEST(Cgroup2MountTest, NoneIsNullopt) {
  EXPECT_FALSE(cgroup2_mount_from_mountinfo("").has_value());
  EXPECT_FALSE(cgroup2_mount_from_mountinfo(
                   "24 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
                   "35 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n")
                   .has_value());
}

TEST(Cgroup2MountTest, IgnoresCgroup2NamedOutsideTheFsTypeField) {
  // "cgroup2" as a mount point, a source or an option is not the file system type.
  EXPECT_FALSE(
      cgroup2_mount_from_mountinfo("40 24 0:35 / /cgroup2 rw shared:1 - tmpfs cgroup2 rw,cgroup2\n"
                                   "41 24 0:36 / /x rw - ext4 cgroup2 rw\n")
          .has_value());
}

TEST(Cgroup2MountTest, MalformedLinesAreSkipped) {
  const std::string mountinfo =
      "garbage\n"
      "1 2 3 4 5 6 -\n"
      "\n"
      "26 25 0:23 / /cg rw - cgroup2 cgroup2 rw\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/cg");
}

uint64_t inode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

class CgroupResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tcpka_cgroup_test.XXXXXX";
    const char* d = mkdtemp(tmpl);
    ASSERT_NE(d, nullptr);
    root_ = d;
    fs::create_directories(root_ + "/a/b/c");
    fs::create_directories(root_ + "/x");
  }
  void TearDown() override {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  std::string root_;
};

TEST_F(CgroupResolverTest, ResolvesIdsToRelativePaths) {
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  EXPECT_EQ(r.root(), root_);
  EXPECT_EQ(r.path(inode_of(root_)), "/");
  EXPECT_EQ(r.path(inode_of(root_ + "/a")), "/a");
  EXPECT_EQ(r.path(inode_of(root_ + "/a/b")), "/a/b");
  EXPECT_EQ(r.path(inode_of(root_ + "/a/b/c")), "/a/b/c");
  EXPECT_EQ(r.path(inode_of(root_ + "/x")), "/x");
}

TEST_F(CgroupResolverTest, TrailingSlashInRoot) {
  CgroupResolver r(root_ + "/", std::chrono::milliseconds(0));
  EXPECT_EQ(r.path(inode_of(root_ + "/a/b")), "/a/b");
  EXPECT_EQ(r.path(inode_of(root_)), "/");
}

TEST_F(CgroupResolverTest, UnknownIdIsEmpty) {
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  // An inode outside the tree on the same file system: the root's parent directory.
  EXPECT_EQ(r.path(inode_of(fs::path(root_).parent_path().string())), "");
  EXPECT_EQ(r.path(0), "");
}

TEST_F(CgroupResolverTest, FilesAreNotCgroups) {
  const std::string file = root_ + "/a/cgroup.procs";
  {
    FILE* f = fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fclose(f);
  }
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  EXPECT_EQ(r.path(inode_of(file)), "");
  EXPECT_EQ(r.path(inode_of(root_ + "/a")), "/a");
}

TEST_F(CgroupResolverTest, NewDirectoryFoundAfterRescan) {
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  ASSERT_EQ(r.path(inode_of(root_ + "/a/b")), "/a/b");
  fs::create_directories(root_ + "/a/new/deep");
  EXPECT_EQ(r.path(inode_of(root_ + "/a/new/deep")), "/a/new/deep");
  EXPECT_EQ(r.path(inode_of(root_ + "/a/new")), "/a/new");
}

TEST_F(CgroupResolverTest, RemovedDirectoryIsForgottenAfterRescan) {
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  const uint64_t c = inode_of(root_ + "/a/b/c");
  ASSERT_EQ(r.path(c), "/a/b/c");
  fs::create_directories(root_ + "/later");
  fs::remove(root_ + "/a/b/c");
  // A miss triggers the rescan that drops /a/b/c.
  EXPECT_EQ(r.path(inode_of(root_ + "/later")), "/later");
  // Nothing was created in the tree since, so c's inode cannot name anything there.
  EXPECT_EQ(r.path(c), "");
}

TEST_F(CgroupResolverTest, RescanIsRateLimited) {
  CgroupResolver r(root_, std::chrono::hours(1));
  ASSERT_EQ(r.path(inode_of(root_ + "/a")), "/a");  // first lookup scans
  fs::create_directories(root_ + "/late");
  // Within min_rescan of the first scan, a miss does not rescan.
  EXPECT_EQ(r.path(inode_of(root_ + "/late")), "");
}

TEST_F(CgroupResolverTest, Exists) {
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  EXPECT_TRUE(r.exists("/a/b"));
  EXPECT_TRUE(r.exists("/a/b/c"));
  EXPECT_TRUE(r.exists("/"));
  EXPECT_FALSE(r.exists("/zz"));
  const std::string file = root_ + "/a/memory.max";
  {
    FILE* f = fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fclose(f);
  }
  EXPECT_FALSE(r.exists("/a/memory.max"));
  fs::remove(root_ + "/a/b/c");
  EXPECT_FALSE(r.exists("/a/b/c"));
}

TEST_F(CgroupResolverTest, UnreadableDirectoryDoesNotStopTheScan) {
  fs::create_directories(root_ + "/locked/inner");
  fs::create_directories(root_ + "/open");
  ASSERT_EQ(::chmod((root_ + "/locked").c_str(), 0), 0);
  CgroupResolver r(root_, std::chrono::hours(1));
  EXPECT_EQ(r.path(inode_of(root_ + "/locked")), "/locked");
  EXPECT_EQ(r.path(inode_of(root_ + "/open")), "/open");
  EXPECT_EQ(r.path(inode_of(root_ + "/a/b/c")), "/a/b/c");
  ::chmod((root_ + "/locked").c_str(), 0755);
}

TEST_F(CgroupResolverTest, StableCgroupsResolveWhileOthersComeAndGo) {
  // On a real host cgroups are removed while we scan. That must not hide the
  // ones that stay: a scan that misses them answers "" for min_rescan.
  constexpr int kStable = 50;
  constexpr int kChurning = 200;
  std::vector<uint64_t> stable;
  for (int i = 0; i < kStable; ++i) {
    const std::string d = root_ + "/s" + std::to_string(i);
    fs::create_directories(d);
    stable.push_back(inode_of(d));
  }
  for (int i = 0; i < kChurning; ++i)
    fs::create_directories(root_ + "/c" + std::to_string(i) + "/x");

  std::atomic<bool> stop{false};
  std::thread churn([&] {
    std::error_code ec;
    for (int n = 0; !stop; ++n) {
      const std::string d = root_ + "/c" + std::to_string(n % kChurning);
      fs::remove_all(d, ec);
      fs::create_directories(d + "/x", ec);
    }
  });
  int bad_scans = 0;
  std::string first_miss;
  for (int scan = 0; scan < 300; ++scan) {
    // One scan per resolver: the first lookup scans, later misses do not rescan.
    CgroupResolver r(root_, std::chrono::hours(1));
    bool all = true;
    for (int i = 0; i < kStable; ++i) {
      if (r.path(stable[i]) != "/s" + std::to_string(i)) {
        if (first_miss.empty()) first_miss = "/s" + std::to_string(i);
        all = false;
      }
    }
    bad_scans += !all;
  }
  stop = true;
  churn.join();
  EXPECT_EQ(bad_scans, 0) << "scans that lost a live cgroup (first: " << first_miss
                          << ") while sibling cgroups were being removed";
}

TEST(CgroupResolverNoRootTest, EmptyRootResolvesNothing) {
  CgroupResolver r("", std::chrono::milliseconds(0));
  EXPECT_EQ(r.path(1), "");
  EXPECT_EQ(r.path(inode_of("/")), "");
  EXPECT_FALSE(r.exists("/"));
}

}  // namespace
}  // namespace tcpka
