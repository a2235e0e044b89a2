package fleet

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/passeur/passeur/image/repo"
)

// Store is the fleet's database, one bbolt file (go.etcd.io/bbolt).
//
// Why bbolt rather than SQLite (modernc.org/sqlite, the pure-Go driver):
// bbolt is pure Go too, keeps everything in one file, and gives ACID
// transactions with one writer, which is all the fleet needs: a few
// records per box, read and written by key, never queried. modernc's
// SQLite would add several MB to the host tool for a query language
// nothing here uses.
//
// The file is opened for each operation and closed after it: bbolt locks
// the file for as long as it is open, and `passeur fleet enroll` must work
// while `passeur serve` runs.
//
// Layout (format 1):
//
//	meta    format → "1"
//	tokens  hex SHA-256 of a token → box ID
//	boxes   <box ID> → bucket
//	          box      → the Box, as JSON (never the token: its hash)
//	          reports  → 8-byte big-endian sequence → a Received, as JSON; the newest History kept
type Store struct {
	path string
	mu   sync.Mutex // one operation at a time from this process: the file lock would make them poll
	now  func() time.Time
}

// MaxBoxes bounds the boxes a fleet enrolls (and the page lists).
const MaxBoxes = 65536

// maxFailures bounds the versions a box's record remembers a failure of.
const maxFailures = 8

// lockWait is how long an operation waits for another process's.
const lockWait = 5 * time.Second

var (
	bucketMeta    = []byte("meta")
	bucketTokens  = []byte("tokens")
	bucketBoxes   = []byte("boxes")
	keyFormat     = []byte("format")
	keyBox        = []byte("box")
	bucketReports = []byte("reports")
)

const format = "1"

// Open opens the fleet database at path, creating it if need be.
func Open(path string) (*Store, error) {
	s := &Store{path: path, now: time.Now}
	err := s.update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch f := meta.Get(keyFormat); {
		case f == nil:
			if err := meta.Put(keyFormat, []byte(format)); err != nil {
				return err
			}
		case string(f) != format:
			return fmt.Errorf("fleet database %s: format %q, this passeur reads %q", path, f, format)
		}
		for _, b := range [][]byte{bucketTokens, bucketBoxes} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) open(readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: lockWait, ReadOnly: readOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("fleet database %s: held by another process for %v", s.path, lockWait)
	}
	if err != nil {
		return nil, fmt.Errorf("fleet database %s: %w", s.path, err)
	}
	return db, nil
}

func (s *Store) update(fn func(*bolt.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	db, err := s.open(false)
	if err != nil {
		return err
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	db, err := s.open(true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

// Enroll enrolls a box in account, with a test tag or none, and gives the
// token it reports with. Enrolling a box again gives it a new token (the
// old one is refused from then on) and moves it to account and tag; its
// reports are kept. Only the token's SHA-256 is stored.
func Enroll(s *Store, box, account, tag string) (string, error) {
	if err := CheckBox(box); err != nil {
		return "", err
	}
	if err := repo.CheckAccount(account); err != nil {
		return "", err
	}
	if tag != "" {
		if err := repo.CheckTag(tag); err != nil {
			return "", err
		}
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	token := hex.EncodeToString(secret)
	hash := tokenHash(token)
	now := s.now().UTC()
	err := s.update(func(tx *bolt.Tx) error {
		boxes, tokens := tx.Bucket(bucketBoxes), tx.Bucket(bucketTokens)
		b := Box{ID: box, Enrolled: now}
		if bb := boxes.Bucket([]byte(box)); bb != nil {
			old, err := readBox(bb)
			if err != nil {
				return err
			}
			if err := tokens.Delete([]byte(old.TokenHash)); err != nil {
				return err
			}
			b = old
		} else if n := count(boxes); n >= MaxBoxes {
			return fmt.Errorf("%w: %d", ErrFull, n)
		}
		b.Account, b.Tag, b.TokenHash, b.TokenIssued = account, tag, hash, now
		bb, err := boxes.CreateBucketIfNotExists([]byte(box))
		if err != nil {
			return err
		}
		if _, err := bb.CreateBucketIfNotExists(bucketReports); err != nil {
			return err
		}
		if err := writeBox(bb, &b); err != nil {
			return err
		}
		return tokens.Put([]byte(hash), []byte(box))
	})
	if err != nil {
		return "", fmt.Errorf("enroll %s: %w", box, err)
	}
	return token, nil
}

// tokenHash is how a token is stored and looked up.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func count(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

func readBox(bb *bolt.Bucket) (Box, error) {
	var b Box
	if err := json.Unmarshal(bb.Get(keyBox), &b); err != nil {
		return b, fmt.Errorf("a box's record: %w", err)
	}
	return b, nil
}

func writeBox(bb *bolt.Bucket, b *Box) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return bb.Put(keyBox, data)
}

// authenticate is the box a token was enrolled for.
func (s *Store) authenticate(token string) (string, error) {
	if len(token) != 64 {
		return "", ErrBadToken
	}
	if _, err := hex.DecodeString(token); err != nil {
		return "", ErrBadToken
	}
	hash := tokenHash(token)
	var box string
	err := s.view(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketTokens).Get([]byte(hash))
		if id == nil {
			return ErrBadToken
		}
		bb := tx.Bucket(bucketBoxes).Bucket(id)
		if bb == nil {
			return ErrBadToken
		}
		b, err := readBox(bb)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(b.TokenHash), []byte(hash)) != 1 {
			return ErrBadToken
		}
		box = string(id)
		return nil
	})
	return box, err
}

// record stores a checked report of a box whose token was enrolled, at the
// server's time at: its history gains it and loses its oldest past
// History. The token is checked again in the same transaction, so a box
// enrolled anew in between is refused.
func (s *Store) record(token string, r Report, at time.Time) error {
	hash := tokenHash(token)
	return s.update(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBoxes).Bucket([]byte(r.Box))
		if bb == nil {
			return fmt.Errorf("%s: %w", r.Box, ErrNotEnrolled)
		}
		b, err := readBox(bb)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(b.TokenHash), []byte(hash)) != 1 {
			return ErrBadToken
		}
		rec := Received{Report: r, Received: at.UTC()}
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		reports := bb.Bucket(bucketReports)
		seq, err := reports.NextSequence()
		if err != nil {
			return err
		}
		if err := reports.Put(binary.BigEndian.AppendUint64(nil, seq), data); err != nil {
			return err
		}
		c := reports.Cursor()
		for n := count(reports); n > History; n-- {
			c.First()
			if err := c.Delete(); err != nil {
				return err
			}
		}
		b.Seen = rec.Received
		v := Version{r.Product, r.Version}
		if r.State == StateDone {
			b.Running = &v
		}
		if rec.Failed() {
			b.Failures = addFailure(b.Failures, Failure{r.Product, r.Version, rec.Received})
		}
		return writeBox(bb, &b)
	})
}

// Boxes are every enrolled box, by ID, each with its last report.
func (s *Store) Boxes() ([]Box, error) {
	var out []Box
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBoxes).ForEachBucket(func(id []byte) error {
			b, err := boxOf(tx.Bucket(bucketBoxes).Bucket(id))
			if err != nil {
				return fmt.Errorf("box %s: %w", id, err)
			}
			out = append(out, b)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// Box is one enrolled box, with its last report.
func (s *Store) Box(id string) (Box, error) {
	var b Box
	err := s.view(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBoxes).Bucket([]byte(id))
		if bb == nil {
			return fmt.Errorf("%s: %w", id, ErrNotEnrolled)
		}
		var err error
		b, err = boxOf(bb)
		return err
	})
	return b, err
}

func boxOf(bb *bolt.Bucket) (Box, error) {
	b, err := readBox(bb)
	if err != nil {
		return b, err
	}
	if _, data := bb.Bucket(bucketReports).Cursor().Last(); data != nil {
		b.Last = &Received{}
		if err := json.Unmarshal(data, b.Last); err != nil {
			return b, fmt.Errorf("its last report: %w", err)
		}
	}
	return b, nil
}

// History is a box's stored reports, oldest first: at most History.
func (s *Store) History(id string) ([]Received, error) {
	var out []Received
	err := s.view(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBoxes).Bucket([]byte(id))
		if bb == nil {
			return fmt.Errorf("%s: %w", id, ErrNotEnrolled)
		}
		return bb.Bucket(bucketReports).ForEach(func(_, data []byte) error {
			var r Received
			if err := json.Unmarshal(data, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}
