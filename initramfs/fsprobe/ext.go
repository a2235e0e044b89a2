package fsprobe

import "io"

// ext2/3/4: superblock at 1024, magic 0xEF53 at offset 56 in it.
func probeExt(r io.ReaderAt, size int64) (*FS, error) {
	sb, err := readAt(r, size, 1024, 1024)
	if sb == nil || err != nil {
		return nil, err
	}
	if le.Uint16(sb[56:]) != 0xEF53 {
		return nil, nil
	}
	compat, incompat, roCompat := le.Uint32(sb[0x5C:]), le.Uint32(sb[0x60:]), le.Uint32(sb[0x64:])
	const (
		compatJournal       = 0x4
		incompatJournalDev  = 0x8
		incompatExt3Allowed = 0x2 | 0x4 | 0x10 // filetype, recover, meta_bg
		roCompatExt3Allowed = 0x1 | 0x2 | 0x4  // sparse_super, large_file, btree_dir
	)
	fs := &FS{Type: "ext2", Label: cstring(sb[120:136]), UUID: uuid(sb[104:120])}
	switch {
	case incompat&incompatJournalDev != 0:
		fs.Type = "jbd"
	case incompat&^incompatExt3Allowed != 0 || roCompat&^roCompatExt3Allowed != 0:
		// Features ext3 does not know: only ext4 mounts this.
		fs.Type = "ext4"
	case compat&compatJournal != 0:
		fs.Type = "ext3"
	}
	return fs, nil
}
