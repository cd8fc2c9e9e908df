-- 007: the images API (POST/GET/DELETE /images). The table is in 002;
-- this adds its JSON shape, a size bound, and the index the hourly purge
-- of never-attached uploads (ARCHITECTURE 8) walks.

ALTER TABLE images ADD CONSTRAINT images_size_bound
  CHECK (size_bytes > 0 AND size_bytes <= 20971520);

CREATE INDEX images_unattached ON images (created_at) WHERE NOT attached;

CREATE FUNCTION api_image(i images) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('img', i.id), 'organization_id', evr_id('org', i.org_id),
    'session_id', evr_id('ses', i.session_id), 'filename', i.filename,
    'content_type', i.media_type, 'media_type', i.media_type,
    'size_bytes', i.size_bytes, 'attached', i.attached,
    'created_at', evr_ts(i.created_at))
$$;
