// Package tests holds passeur's scenario tests: they boot what build.sh
// built in QEMU (package qemu) over disk images made by the real host tools,
// and assert on the events the guest emits. Run them with ./build.sh test,
// or one of them with ./build.sh test -run TestName.
package tests
