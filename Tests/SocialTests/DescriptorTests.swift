import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The test process runs its suites in parallel, and Linux hands the lowest free descriptor
/// number to the next `open` of any thread: a descriptor closed twice closes, the second time,
/// whatever file another test opened in between. That is how a database in `HomeTests` once
/// read 0 bytes from one of its tables ("LSM corrupt: short read of block at 0"): the shell
/// process helper of the kill-torture and soak tests closed the child's standard input in
/// `finish()` and again in deinit.
///
/// Each check runs as an exit test, in a process of its own where no other test opens files,
/// so the freed number is certainly reused by the file the check opens.
@Suite struct DescriptorTests {
    @Test func finishedShellProcessClosesItsInputOnce() async {
        await #expect(processExitsWith: .success) {
            var process: ShellProcess? = try ShellProcess(binary: "/bin/cat", arguments: [], stderrPath: "/dev/null")
            let input = process!.inputDescriptor
            _ = process!.finish()
            // Fill the free numbers up to the one `finish()` released: one of ours now has it.
            var mine: [Int32] = []
            while mine.count < 64 {
                let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { exit(2) }
                mine.append(fd)
                if fd == input { break }
            }
            guard mine.last == input else { exit(3) }
            process = nil // deinit: must not close `input` a second time
            for fd in mine where fcntl(fd, F_GETFD) < 0 { exit(1) }
            exit(0)
        }
    }
}
