-- 0006: storm folding. A delivery of a folding rule keeps the end of its key's window
-- (fold_until); a note keeps the events it lists (folded, JSON); an event's delivery folded
-- into a note names it (folded_into).
ALTER TABLE deliveries ADD COLUMN fold_until REAL;
ALTER TABLE deliveries ADD COLUMN folded TEXT;
ALTER TABLE deliveries ADD COLUMN folded_into TEXT;
