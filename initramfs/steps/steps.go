// Package steps is the one place that names every step of every run
// passeur journals on its media: what each needs, what it writes, what its
// done record holds, and where its mechanism lives. The agent's modes run
// these steps in the order of Table; the journal records them by Name; the
// take-up after a power cut and the tests read them from here. The README's
// table of steps is generated from Table and checked against it.
package steps

import (
	"strings"

	"github.com/passeur/passeur/image/config"
)

// The steps, by their journal names. A name ending in a space is a family:
// the journal records one step per partition, disk or piece, the name
// followed by it ("write root", "format SN-0042", "rollback 3").
const (
	Plan     = "plan"
	Release  = "release"
	Save     = "rollback save"
	Recover  = "recover"
	Backup   = "backup"
	Verify   = "verify"
	Complete = "complete"
	Upload   = "upload"
	Format   = "format "
	Reattach = "reattach"
	Write    = "write "
	WayBack  = "way back"
	Entry    = "boot entry"
	State    = "state"
	Fstab    = "fstab"
	Restore  = "restore"
	Table    = "table"
	Boot     = "boot"
	Health   = "health"
	RolledIn = "rolled back"
	Piece    = "rollback "
)

// Target is what a step writes.
type Target string

const (
	Nothing  Target = ""       // reads only; its record is the check it made
	Media    Target = "media"  // the install media (backup, save)
	System   Target = "system" // the disk being migrated or installed
	DataDisk Target = "data"   // a blank data disk an install formats
	Old      Target = "old"    // the installed system's root, in place (restore mode)
)

// Step is one row of the table.
type Step struct {
	Name    string        // as journaled; a family ends in a space
	Modes   []config.Mode // the modes that run it, in which it comes in Table's order
	Needs   string        // what must hold before it runs
	Writes  Target        // what it writes
	Records string        // what its done record holds
	Where   string        // the folder of its mechanism, from the repository's root
}

// Family reports whether the step is one per partition, disk or piece.
func (s Step) Family() bool { return strings.HasSuffix(s.Name, " ") }

var all = []Step{
	{Plan, []config.Mode{config.ModeMigrate, config.ModeInstall, config.ModeRollback},
		"roles, preflight and the plan checked; the release verified; the operator's yes (attended)",
		Media, "the job: target identity, table bytes, extents, identifiers (rollback: the save it puts back)", "initramfs/migrate"},
	{Release, []config.Mode{config.ModeMigrate},
		"every artifact checked as stored on the media (size, SHA-256)",
		Nothing, "the number of artifacts", "initramfs/media"},
	{Save, []config.Mode{config.ModeMigrate},
		"the job's overwritten regions; room on the media (else asked, or left out unattended)",
		Media, "whether a rollback is available, bytes and pieces", "initramfs/rollback"},
	{Recover, []config.Mode{config.ModeBackup, config.ModeRecover, config.ModeMigrate},
		"the installed index fails the product's check (or passeur.mode=recover)",
		Nothing, "the rebuilt index's report", "initramfs/recovery"},
	{Backup, []config.Mode{config.ModeBackup, config.ModeRecover, config.ModeMigrate},
		"the installed system mounted read-only; the product's configuration and index paths",
		Media, "the backup's entries, bytes and encryption", "initramfs/backup"},
	{Verify, []config.Mode{config.ModeBackup, config.ModeRecover, config.ModeMigrate},
		"the backup written and synced; the page cache dropped",
		Nothing, "the number of files checked and the hash of SHA256SUMS", "initramfs/backup"},
	{Complete, []config.Mode{config.ModeBackup, config.ModeRecover, config.ModeMigrate},
		"the backup verified",
		Media, "whether the backup is sealed (COMPLETE written)", "initramfs/backup"},
	{Upload, []config.Mode{config.ModeMigrate},
		"the backup complete; a staged run (passeur.staged=) whose box reports to a fleet server (passeur.report=)",
		Nothing, "the bytes and SHA-256 the fleet server kept, the ones sent, or why not: the run goes on", "image/fleet"},
	{Format, []config.Mode{config.ModeInstall},
		"a data disk named by passeur.format-data, blank or already as this install made it",
		DataDisk, "the disk, its ext4 UUID and label", "initramfs/migrate"},
	{Reattach, []config.Mode{config.ModeMigrate, config.ModeInstall},
		"the data volumes mounted read-only and listed",
		Nothing, "the new system's fstab entries, and the volumes left out with why", "initramfs/reattach"},
	{Write, []config.Mode{config.ModeMigrate, config.ModeInstall},
		"the release's artifact for the partition; unchanged blocks skipped when taken up",
		System, "the artifact's SHA-256, bytes written and skipped, read-back", "initramfs/stream"},
	{WayBack, []config.Mode{config.ModeMigrate},
		"a staged run (passeur.staged=) on a box whose firmware is UEFI; right after the new ESP's write, which holds systemd-boot",
		System, "whether the rescue is on the new ESP as systemd-boot's default entry (LoaderEntryDefault, checked at each take-up, taken off before the boot), or why not; the disk's table must hold an ESP where the new one is", "initramfs/newsys"},
	{Entry, []config.Mode{config.ModeMigrate, config.ModeInstall},
		"an MBR target: the new ESP's boot entries name the release's PARTUUIDs",
		System, "the entries changed and the PARTUUIDs they now name", "initramfs/newsys"},
	{State, []config.Mode{config.ModeMigrate, config.ModeInstall},
		"the layout has a state partition",
		System, "the ext4 filesystem's UUID", "initramfs/migrate"},
	{Fstab, []config.Mode{config.ModeMigrate, config.ModeInstall},
		"the reattach step's entries; the repository state the media remembers",
		System, "the number of entries written in the state's etc/fstab, and of repository state files copied to its passeur/repository/", "initramfs/newsys"},
	{Restore, []config.Mode{config.ModeMigrate, config.ModeRestore},
		"the backup verified and checked whole (machine, seal, paths, links)",
		System, "the entries restored (migrate: into the state's restore/; restore mode: into the installed root)", "initramfs/backup"},
	{Table, []config.Mode{config.ModeMigrate, config.ModeInstall},
		"every partition written; the table's bytes as planned",
		System, "the disk GUID and the number of partitions", "initramfs/migrate"},
	{Boot, []config.Mode{config.ModeMigrate, config.ModeInstall},
		"the new table on the disk; the new system's boot entry",
		Nothing, "how the new system was started (kexec with its entry, or reboot)", "initramfs/newsys"},
	{Health, []config.Mode{config.ModeMigrate},
		"the new system booted and wrote its health report on its state partition",
		Nothing, "journaled only when failed: the message and what can put the old system back", "initramfs/newsys"},
	{RolledIn, []config.Mode{config.ModeRollback},
		"a migration's rollback save, verified; noted in that migration's journal before the first piece",
		Media, "the rollback run that put the disk back", "initramfs/rollback"},
	{Piece, []config.Mode{config.ModeRollback},
		"the saved piece's stored hash",
		System, "the piece's offset, length and stored hash", "initramfs/rollback"},
}

// All returns the table, in the order a run goes through it.
func All() []Step { return append([]Step(nil), all...) }

// Of returns the row of a journaled step name: "write root" is the Write
// family's. It reports false for a name no mode journals.
func Of(name string) (Step, bool) {
	for _, s := range all {
		if s.Family() && strings.HasPrefix(name, s.Name) && len(name) > len(s.Name) || !s.Family() && s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// In returns the steps mode runs, in order.
func In(mode config.Mode) []Step {
	var out []Step
	for _, s := range all {
		for _, m := range s.Modes {
			if m == mode {
				out = append(out, s)
			}
		}
	}
	return out
}

// WritesSystem reports whether the journaled step name writes the disk
// being migrated or installed: once one has begun, the old system may be
// gone, and only the journal says what to do.
func WritesSystem(name string) bool {
	s, ok := Of(name)
	return ok && (s.Writes == System || s.Writes == DataDisk || s.Name == Boot)
}
