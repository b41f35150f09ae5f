-- +goose Up
-- The guestbook's messages. Ids come from an identity column, so every
-- replica writes without coordination and the id orders messages by
-- insertion (the API's cursor pagination relies on it).
CREATE TABLE messages (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    text       text        NOT NULL CHECK (char_length(text) BETWEEN 1 AND 1000),
    created_at timestamptz NOT NULL DEFAULT now(),
    instance   text        NOT NULL
);

-- +goose Down
DROP TABLE messages;
