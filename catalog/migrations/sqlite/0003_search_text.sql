-- A lower-cased text of each resource's code, name, summary and data item names, kept by the
-- code that writes resources, so a search rejects non-matching resources with one LIKE.
-- Keep in step with migrations/postgres/0003_search_text.sql.
ALTER TABLE resources ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE resources SET search_text = LOWER(code || char(10) || name || char(10) || summary || char(10) ||
    COALESCE((SELECT group_concat(label_zh || ' ' || name, char(10)) FROM data_items i WHERE i.resource_id = resources.id), ''));
