// Package medialayout names the files that passeur's host tools write and
// its rescue reads: on install media (a USB key, a RAM disk, a folder served
// by netboot) and in the rescue image itself. It is the one source of these
// names; host packages (image/…) and rescue packages (initramfs/…) both
// import it, and it imports nothing.
package medialayout

// On install media, relative to the FAT filesystem's root.
const (
	// Marker is the file that makes a FAT filesystem passeur's media.
	Marker = "passeur/media.json"
	// MarkerData is the marker's content on the media passeur makes.
	MarkerData = `{"format":1}` + "\n"
	// ReleasesDir holds the signed releases, one folder each
	// (<product>-<version>).
	ReleasesDir = "releases"
	// BackupDir holds every backup.
	BackupDir = "Backup"
	// RepoStateDir is where a box remembers the repository metadata it
	// trusted and the newest time it saw signed (image/repoclient): on
	// the media, and at the same path on the state partition of a system
	// passeur installed.
	RepoStateDir = "passeur/repository"
)

// In the rescue image, relative to its root.
const (
	// TrustedDir holds the minisign public keys releases and
	// repositories must be signed by.
	TrustedDir = "etc/passeur/trusted"
	// ProductsDir holds the profiles of the products the image knows
	// (passeur build -product): <product>.json each.
	ProductsDir = "etc/passeur/products"
	// RepoRoot is the trusted root of the release repositories (TUF
	// root.json, passeur build -repo-root): the chain of roots a box
	// follows starts there.
	RepoRoot = "etc/passeur/trusted/repository-root.json"
	// Built is when the rescue image's sources were committed (RFC 3339):
	// a time known to have passed, below which no clock is believed.
	Built = "etc/passeur/built"
	// KernelSHA256 is the SHA-256 (hex) of the kernel the rescue image was
	// built with: what a rescue trusts a kernel file to be before it
	// copies it where the firmware will boot it.
	KernelSHA256 = "etc/passeur/vmlinuz.sha256"
	// InitramfsManifest lists every record of the image's own initramfs
	// but itself (image/ownimage): what a rescue writes itself again
	// from, out of what it runs.
	InitramfsManifest = "etc/passeur/initramfs.json"
)
