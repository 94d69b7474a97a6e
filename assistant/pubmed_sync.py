"""`atlas-assistant sync pubmed`: new and updated PubMed records into a library folder, through NCBI
E-utilities with Biopython's Bio.Entrez. The only part of the program that contacts a server, and only
when this command runs.

How it works:
- a search (`--query`, default in prompts/sync.toml) runs as one esearch with the history server
  (usehistory=y), then efetch reads the results in batches of `eutils_retmax` records; `--pmids FILE`
  (a BibTeX export or a plain list of PMIDs) fetches those records by id, in batches too;
- every record becomes one JSON file, `<library>/pubmed-<PMID>.json`, in the record format the
  PubMed JSON importer reads (assistant/parse/pubmed.py), so `atlas-assistant index <library>` reads
  them with the rest of the corpus and embeds only what changed. An updated record replaces its file;
- PubMed's retraction marks set `retracted`: the "Retracted Publication" type or a "RetractionIn"
  link on the record, or a retraction notice ("Retraction of Publication", "RetractionOf" link) for a
  record already in the library. A notice is not a study and is not written;
- NCBI's rate limit (3 requests/s, 10 with an API key) is kept; 429, 5xx and dropped connections are
  retried with exponential backoff;
- a state file in the library (`atlas-sync.state`, JSON) records the query, the last date synced and
  the batches of an unfinished run; a run that stops (a dropped connection, malformed XML, Ctrl-C)
  resumes at the first unfinished batch when the same command runs again. A search without --since
  continues from the last date this query was synced (by modification date, so retractions and
  corrections of older records come too).

Bio.Entrez (1.88) spells the NCBI address inside each of its functions, so requests are built with its
request builder (email, api_key, tool, POST for long id lists) on the `eutils_url` setting and opened
here, where the retries and backoff are ours; Entrez.read parses the XML."""
from __future__ import annotations

import fcntl
import hashlib
import http.client
import io
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

from .prompts import table

STATE = "atlas-sync.state"  # JSON, but not named .json: the library folder is read as a corpus
LOCK = ".atlas-sync.lock"
PREFIX = "pubmed-"
STATE_VERSION = 1
TRANSIENT = {429, 500, 502, 503, 504}
PUBMED_LIMIT = 10_000  # records E-utilities serves from one PubMed search
RETRACTED_TYPE = "retracted publication"
NOTICE_TYPE = "retraction of publication"
PMID_IN_XML = re.compile(rb"<PMID[^>]*>\s*(\d+)\s*</PMID>")
ERROR_IN_XML = re.compile(rb"<ERROR>(.*?)</ERROR>", re.S)


class SyncError(Exception):
    """A problem the user can fix (no email, a bad --pmids file, a refused request); one line."""


class TransportError(SyncError):
    """The server could not be reached or kept failing after every retry."""


def texts() -> dict:
    return table("sync")["text"]


def default_query() -> str:
    return table("sync")["pubmed"]["query"]


# --- talking to E-utilities ---------------------------------------------------------------------

class Eutils:
    """E-utilities over HTTP: requests built by Bio.Entrez on `base_url`, NCBI's rate limit kept,
    transient failures (429, 5xx, dropped or cut connections, timeouts) retried with exponential
    backoff (`backoff` * 2**attempt seconds, at most `max_backoff`). The API key goes into requests
    only; no message here ever contains a request URL."""

    def __init__(self, base_url: str, email: str, api_key: str = "", tool: str = "atlas-assistant",
                 retries: int = 5, backoff: float = 1.0, max_backoff: float = 30.0, timeout: float = 60.0,
                 min_interval: float | None = None, sleep=time.sleep):
        from Bio import Entrez

        self.entrez = Entrez
        Entrez.email, Entrez.api_key, Entrez.tool = email or None, api_key or None, tool
        self.base = base_url.rstrip("/")
        self.retries, self.backoff, self.max_backoff, self.timeout = retries, backoff, max_backoff, timeout
        # NCBI: at most 3 requests a second, 10 with a key (Biopython's 0.37 s proved safer than 1/3 s)
        self.min_interval = (0.1 if api_key else 0.37) if min_interval is None else min_interval
        self.sleep = sleep
        self.requests = self.retried = 0
        self._last = 0.0

    def _turn(self) -> None:
        wait = self._last + self.min_interval - time.monotonic()
        if wait > 0:
            self.sleep(wait)
        self._last = time.monotonic()

    def fetch(self, utility: str, params: dict, what: str) -> bytes:
        """The body of one E-utility response; TransportError after the last retry."""
        problem = ""
        for attempt in range(self.retries + 1):
            self._turn()
            request = self.entrez._build_request(f"{self.base}/{utility}.fcgi", dict(params))
            retry_after = 0.0
            self.requests += 1
            try:
                with urlopen(request, timeout=self.timeout) as response:
                    return response.read()
            except HTTPError as err:
                if err.code not in TRANSIENT:
                    raise SyncError(f"{what}: E-utilities refused the request (HTTP {err.code} {err.reason})") \
                        from None
                problem = f"HTTP {err.code} {err.reason}"
                retry_after = _seconds(err.headers.get("Retry-After") if err.headers else None)
            except (URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
                problem = _describe(err)
            if attempt < self.retries:
                self.retried += 1
                self.sleep(min(self.max_backoff, max(self.backoff * 2 ** attempt, retry_after)))
        raise TransportError(f"{what}: {problem} (tried {self.retries + 1} times)")

    def read(self, data: bytes):
        return self.entrez.read(io.BytesIO(data), validate=False)


def _seconds(value) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def _describe(err: Exception) -> str:
    if isinstance(err, http.client.IncompleteRead):
        return f"connection cut after {len(err.partial)} bytes"
    if isinstance(err, (http.client.RemoteDisconnected, ConnectionResetError)):
        return "the server closed the connection"
    if isinstance(err, URLError):
        return f"cannot reach the server ({err.reason})"
    if isinstance(err, TimeoutError):
        return "no answer in time"
    return f"{type(err).__name__}: {err}"


# --- PubMed XML records -> the importer's JSON records ---------------------------------------------

def _text(value) -> str:
    return re.sub(r"\s+", " ", str(value or "")).strip()


def _year(article: dict) -> int | None:
    issue = article.get("Journal", {}).get("JournalIssue", {})
    pub = issue.get("PubDate", {})
    for value in (pub.get("Year"), pub.get("MedlineDate"),
                  *(d.get("Year") for d in article.get("ArticleDate", []) or [])):
        match = re.search(r"(1[89]|20)\d\d", str(value or ""))
        if match:
            return int(match.group(0))
    return None


def _ymd(value) -> str | None:
    if not value or not value.get("Year"):
        return None
    month = str(value.get("Month", "1"))
    month = month if month.isdigit() else str(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                                "oct", "nov", "dec"].index(month[:3].lower()) + 1)
    return f"{int(value['Year']):04d}-{int(month):02d}-{int(value.get('Day', 1)):02d}"


def _authors(article: dict) -> list[str]:
    names = []
    for author in article.get("AuthorList", []) or []:
        if author.get("LastName"):
            given = _text(author.get("ForeName") or author.get("Initials"))
            names.append(f"{_text(author['LastName'])}, {given}" if given else _text(author["LastName"]))
        elif author.get("CollectiveName"):
            names.append(_text(author["CollectiveName"]))
    return names


def _abstract(article: dict):
    """A structured abstract as {LABEL: text} (the importer maps its labels to roles), else plain text."""
    parts = [(p.attributes.get("Label") or p.attributes.get("NlmCategory") or "", _text(p))
             for p in article.get("Abstract", {}).get("AbstractText", []) or [] if _text(p)]
    labels = [label for label, _ in parts]
    if parts and all(labels) and len(set(labels)) == len(labels):
        return {label: body for label, body in parts}
    return " ".join(f"{label.upper()}: {body}" if label else body for label, body in parts)


def _doi(article: dict, data: dict) -> str | None:
    ids = [*(article.get("ELocationID", []) or [])]
    ids += [i for i in data.get("ArticleIdList", []) or []]
    for value in ids:
        kind = value.attributes.get("EIdType") or value.attributes.get("IdType")
        if kind == "doi" and _text(value):
            return _text(value)
    return None


def _links(citation: dict, kind: str) -> list[str]:
    return sorted({_text(c.get("PMID")) for c in citation.get("CommentsCorrectionsList", []) or []
                   if c.attributes.get("RefType") == kind and _text(c.get("PMID"))})


def record_of(article: dict) -> dict:
    """One PubmedArticle (as Entrez.read gives it) as an importer record; ValueError when unusable."""
    citation = article["MedlineCitation"]
    body = citation["Article"]
    pmid = _text(citation.get("PMID"))
    title = _text(body.get("ArticleTitle")) or _text(body.get("VernacularTitle"))
    if not pmid:
        raise ValueError("a record without a PMID")
    if not title:
        raise ValueError(f"PMID {pmid}: the record has no title")
    types = [_text(t) for t in body.get("PublicationTypeList", []) or []]
    retraction_in = _links(citation, "RetractionIn")
    record = {
        "pmid": pmid, "title": title, "abstract": _abstract(body), "authors": _authors(body),
        "year": _year(body), "journal": _text(body.get("Journal", {}).get("Title")) or None,
        "doi": _doi(body, article.get("PubmedData", {})), "publication_types": types,
        "retracted": bool(retraction_in) or RETRACTED_TYPE in {t.lower() for t in types},
        "retraction_notices": retraction_in,
        "pubmed_revised": _ymd(citation.get("DateRevised")),
    }
    if NOTICE_TYPE in {t.lower() for t in types}:
        record["notice_for"] = _links(citation, "RetractionOf")
    return {k: v for k, v in record.items() if v is not None}


# --- the library folder --------------------------------------------------------------------------

def record_path(library: Path, pmid: str) -> Path:
    return library / f"{PREFIX}{pmid}.json"


def _write_json(path: Path, data: dict) -> None:
    """Atomically: a reader (or a crash) never sees half a file. The temporary name ends in .tmp, so
    `index` never reads one that a crash left behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_state(library: Path) -> dict:
    state = _read_json(Path(library) / STATE) or {}
    return state if state.get("version") == STATE_VERSION else {"version": STATE_VERSION}


def library_last_sync(studies) -> str | None:
    """The last completed sync of the library folders these studies come from (None: never synced)."""
    folders = {Path(s.source_path).parent for s in studies if s.source_format == "json" and s.source_path}
    dates = [read_state(folder).get("last_sync") for folder in folders if (folder / STATE).is_file()]
    return max((d for d in dates if d), default=None)


def currency(library) -> dict:
    """How current an opened library (retrieve.Library) is: its studies and the last PubMed sync."""
    last = library.manifest.get("last_sync")
    return {"studies": len(library.studies),
            "last_sync": last if isinstance(last, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", last) else None}


def currency_text(library) -> str:
    """The same, in words (the web chat's intro)."""
    now = currency(library)
    return texts()["library"].format(studies=f"{now['studies']:,}", last_sync=now["last_sync"] or texts()["never_synced"])


@contextmanager
def _locked(library: Path):
    fd = os.open(library / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SyncError(f"another sync is writing into {library}/; wait for it to finish") from None
        yield
    finally:
        os.close(fd)


# --- PMID lists ---------------------------------------------------------------------------------

def read_pmids(path: Path) -> tuple[list[str], list[str]]:
    """(PMIDs in file order without repeats, notes) from a BibTeX export (each entry's `pmid` field),
    a folder of them, or a plain list (one PMID per line, or separated by commas or spaces;
    '#' starts a comment)."""
    from .parse.bibtex import looks_like_bibtex

    path = Path(path)
    files = sorted(path.glob("*.bib")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise SyncError(f"{path}: no such file" + (" (or no .bib file in it)" if path.is_dir() else ""))
    pmids, notes = [], []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as err:
            raise SyncError(f"{file}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        if looks_like_bibtex(text):
            found, note = _bibtex_pmids(text, file)
            notes += [note] if note else []
        else:
            found = []
            for n, line in enumerate(text.splitlines(), start=1):
                for token in re.split(r"[\s,;]+", line.split("#", 1)[0].strip()):
                    token = re.sub(r"^(pmid:?)", "", token, flags=re.I)
                    if not token:
                        continue
                    if not token.isdigit():
                        raise SyncError(f"{file}:{n}: '{token[:30]}' is not a PMID: expected digits, one "
                                        "PMID per line, or a BibTeX file with pmid fields")
                    found.append(token.lstrip("0") or "0")
        pmids += found
    unique = list(dict.fromkeys(pmids))
    if not unique:
        raise SyncError(f"{path}: no PMID found")
    return unique, notes


def _bibtex_pmids(text: str, file: Path) -> tuple[list[str], str]:
    """The `pmid` field of every entry the BibTeX reader (bibtexparser, as assistant/parse/bibtex.py
    uses it) finds, including entries the importer would refuse as studies (no title)."""
    import bibtexparser

    library = bibtexparser.parse_string(text)
    pmids, without = [], 0
    for entry in library.entries:
        value = next((str(f.value) for k, f in entry.fields_dict.items() if k.lower() == "pmid"), "")
        value = re.sub(r"[{}\s]", "", value)
        if value.isdigit():
            pmids.append(value.lstrip("0") or "0")
        else:
            without += 1
    note = f"{file}: {without} of {len(library.entries)} entries have no PMID and are not synced" if without else ""
    if library.failed_blocks:
        note = (note + "; " if note else f"{file}: ") + f"{len(library.failed_blocks)} blocks could not be read"
    return pmids, note


# --- the run ------------------------------------------------------------------------------------

@dataclass
class SyncSummary:
    library: str
    mode: str  # query | pmids
    query: str | None = None
    pmids_file: str | None = None
    since: str | None = None
    until: str | None = None
    found: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    retracted: int = 0  # records flagged retracted by this run (new ones, or ones that became so)
    failed: int = 0
    skipped: int = 0  # retraction notices and book records: not studies
    batches: int = 0
    batches_done: int = 0
    resumed_batches: int = 0  # finished by an earlier, interrupted run and not fetched again
    requests: int = 0
    retries: int = 0
    complete: bool = False
    last_sync: str | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def contract(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        words = texts()
        lines = [*self.notes]
        if self.resumed_batches:
            lines.append(words["resumed"].format(batches=self.resumed_batches))
        lines.append(words["summary"].format(**asdict(self)))
        lines.append(words["next"].format(library=self.library) if self.complete else words["incomplete"])
        return "\n".join(lines)


def _iso(value: str) -> str:
    """'2025-03-01', '2025/03/01', '2025-03' or '2025' as an ISO date; SyncError otherwise."""
    match = re.fullmatch(r"\s*(\d{4})(?:[-/](\d{1,2}))?(?:[-/](\d{1,2}))?\s*", str(value))
    try:
        if not match:
            raise ValueError
        return date(int(match[1]), int(match[2] or 1), int(match[3] or 1)).isoformat()
    except ValueError:
        raise SyncError(f"--since {value!r}: expected a date such as 2025-03-01") from None


def _eutils_date(iso: str) -> str:
    return iso.replace("-", "/")


def sync_pubmed(settings, library: Path | None = None, query: str | None = None, since: str | None = None,
                pmids_file: Path | None = None, progress: bool = True, client: Eutils | None = None,
                today: str | None = None) -> SyncSummary:
    """Fetch, write, summarise. Problems with single records or batches end up in summary.errors and
    leave the run unfinished (the state keeps what is left); problems with the whole request (no email,
    a bad PMID file, a refused search) raise SyncError before anything is written."""
    started = time.perf_counter()
    if query and pmids_file:
        raise SyncError("give either --query or --pmids, not both")
    if since and pmids_file:
        raise SyncError("--since narrows a search; --pmids fetches exactly the PMIDs given")
    if not settings.ncbi_email:
        raise SyncError(texts()["no_email"])
    library = Path(library or settings.pubmed_library)
    if library.exists() and not library.is_dir():
        raise SyncError(f"{library} is a file, not a library folder; choose another --library")
    since = _iso(since) if since else None
    pmids, notes = read_pmids(pmids_file) if pmids_file else ([], [])
    query = None if pmids_file else (query or settings.pubmed_query or default_query())
    client = client or Eutils(settings.eutils_url, settings.ncbi_email, settings.ncbi_api_key)
    library.mkdir(parents=True, exist_ok=True)
    with _locked(library):
        run = _Run(library, settings.eutils_retmax, client, progress, today or date.today().isoformat())
        summary = SyncSummary(library=str(library), mode="pmids" if pmids_file else "query", query=query,
                              pmids_file=str(pmids_file) if pmids_file else None, notes=notes)
        run.go(summary, query, since, pmids)
    summary.requests, summary.retries = client.requests, client.retried
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


class _Run:
    def __init__(self, library: Path, size: int, client: Eutils, progress: bool, today: str):
        self.library, self.size, self.client, self.progress, self.today = library, size, client, progress, today
        self.state = read_state(library)

    def save(self) -> None:
        _write_json(self.library / STATE, self.state)

    def go(self, summary: SyncSummary, query: str | None, since: str | None, pmids: list[str]) -> None:
        pending = self.state.get("pending") or {}
        if query is not None:
            since = since or self.state.get("queries", {}).get(query)
            key = {"mode": "query", "query": query, "since": since}
        else:
            key = {"mode": "pmids", "ids": hashlib.sha256(",".join(pmids).encode()).hexdigest()[:16],
                   "count": len(pmids)}
        resuming = pending.get("key") == key and pending.get("size") == self.size
        until = pending["until"] if resuming else self.today
        summary.since, summary.until = since, until
        # search first, so that the count of a resumed search can be checked against the earlier one
        if query is not None:
            search = self._search(query, since, until)
            count = int(search["Count"])
        else:
            search, count = None, len(pmids)
        if resuming and pending.get("count") != count:
            summary.notes.append(f"the search now finds {count} records, not {pending.get('count')} as when "
                                 "the unfinished sync began: starting its batches again")
            resuming = False
        if query is not None and count > PUBMED_LIMIT:
            summary.notes.append(f"the search finds {count} records; PubMed serves at most the first "
                                 f"{PUBMED_LIMIT:,} of one search: split it with --since or narrower queries")
        done = set(pending.get("done", [])) if resuming else set()
        batches = -(-count // self.size)
        self.state["pending"] = {"key": key, "until": until, "size": self.size, "count": count,
                                 "done": sorted(done), "started": pending.get("started") if resuming
                                 else time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.save()
        summary.found, summary.batches = count, batches
        summary.resumed_batches = summary.batches_done = len(done)
        from tqdm import tqdm

        todo = [b for b in range(batches) if b not in done]
        with tqdm(total=count, initial=min(count, len(done) * self.size), desc="PubMed records", unit="record",
                  file=sys.stderr, disable=not self.progress or not todo) as bar:
            for batch in todo:
                first = batch * self.size
                ids = pmids[first:first + self.size] if query is None else None
                what = (f"batch {batch + 1} of {batches} (records {first + 1}-{min(count, first + self.size)}"
                        + (f", PMIDs {ids[0]}-{ids[-1]})" if ids else ")"))
                try:
                    if ids is not None:
                        data = self.client.fetch("efetch", {"db": "pubmed", "id": ids, "retmode": "xml"}, what)
                    else:
                        data = self.client.fetch("efetch", {"db": "pubmed", "query_key": search["QueryKey"],
                                                            "WebEnv": search["WebEnv"], "retstart": first,
                                                            "retmax": self.size, "retmode": "xml"}, what)
                except TransportError as err:
                    summary.errors.append(f"{err}; stopped here: the batches before it are kept, and the "
                                          "same command continues from this batch")
                    break
                if self._batch(data, what, ids, summary, min(self.size, count - first)):
                    done.add(batch)
                    self.state["pending"]["done"] = sorted(done)
                    self.save()
                    summary.batches_done = len(done)
                bar.update(min(self.size, count - first))
        summary.complete = len(done) == batches
        if summary.complete:
            self.state.pop("pending", None)
            self.state["last_sync"] = max(until, self.state.get("last_sync") or until)
            if query is not None:
                self.state.setdefault("queries", {})[query] = until
        history = self.state.setdefault("runs", [])
        history.append({"date": self.today, **{k: getattr(summary, k) for k in (
            "mode", "query", "pmids_file", "since", "until", "found", "new", "updated", "unchanged", "retracted",
            "failed", "skipped", "batches_done", "batches", "complete")}})
        del history[:-10]
        self.save()
        summary.last_sync = self.state.get("last_sync")

    def _search(self, query: str, since: str | None, until: str) -> dict:
        params = {"db": "pubmed", "term": query, "usehistory": "y", "retmax": 0}
        if since:  # by modification date: new records, and corrections or retractions of older ones
            params.update(datetype="mdat", mindate=_eutils_date(since), maxdate=_eutils_date(until))
        data = self.client.fetch("esearch", params, "the PubMed search")
        try:
            result = self.client.read(data)
        except Exception as err:  # noqa: BLE001 - any parser failure is a malformed response
            raise SyncError(f"the PubMed search: malformed XML from esearch ({type(err).__name__}: {err})") \
                from None
        if not isinstance(result, dict) or "Count" not in result:
            error = result.get("ERROR") if isinstance(result, dict) else None
            raise SyncError(f"the PubMed search failed: {error or 'no Count in the esearch response'}")
        if int(result["Count"]) and not (result.get("WebEnv") and result.get("QueryKey")):
            raise SyncError("the PubMed search returned no history (WebEnv, QueryKey) to fetch from")
        return result

    def _batch(self, data: bytes, what: str, ids: list[str] | None, summary: SyncSummary, expected: int) -> bool:
        """Write one batch's records; False (and nothing written) when its XML cannot be read."""
        try:
            result = self.client.read(data)
            problem = f"E-utilities sent an error instead of records ({_text(result['ERROR'])[:120]})" \
                if isinstance(result, dict) and "ERROR" in result else None
            articles = result["PubmedArticle"] if problem is None else None
        except Exception as err:  # noqa: BLE001 - malformed XML, or XML that is not a PubMed set
            error = ERROR_IN_XML.search(data)  # '<eFetchResult><ERROR>…' has no DTD, so Entrez.read refuses it
            problem = (f"E-utilities sent an error instead of records ({error.group(1).decode(errors='replace')[:120]})"
                       if error else f"malformed XML from efetch ({type(err).__name__}: {str(err)[:120]})")
        if problem:
            seen = [m.decode() for m in PMID_IN_XML.findall(data)][:10]
            named = ", ".join(ids[:10] if ids else seen) or "none readable"
            more = "…" if len(ids or seen) >= 10 else ""
            summary.failed += expected
            summary.errors.append(f"{what}: {problem}; PMIDs: {named}{more}. Nothing of this batch was written; "
                                  "earlier batches are kept, and the same command fetches this batch again")
            return False
        summary.skipped += len(result.get("PubmedBookArticle", []) or [])
        returned = set()
        for article in articles:
            try:
                record = record_of(article)
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                summary.failed += 1
                summary.errors.append(f"{what}: {err if isinstance(err, ValueError) else 'unreadable record'}")
                continue
            returned.add(record["pmid"])
            if "notice_for" in record:
                self._notice(record, summary)
            else:
                self._store(record, summary)
        for pmid in [i for i in ids or [] if i not in returned]:
            summary.failed += 1
            summary.errors.append(f"PMID {pmid}: PubMed returned no record for it (deleted, or not a PMID)")
        return True

    def _store(self, record: dict, summary: SyncSummary) -> None:
        path = record_path(self.library, record["pmid"])
        old = _read_json(path) if path.exists() else None
        if old and old.get("retraction_notices"):  # a notice read earlier stays
            record["retraction_notices"] = sorted(set(record["retraction_notices"]) | set(old["retraction_notices"]))
            record["retracted"] = True
        if old == record:
            summary.unchanged += 1
            return
        _write_json(path, record)
        if old is None:
            summary.new += 1
        else:
            summary.updated += 1
        if record["retracted"] and not (old or {}).get("retracted"):
            summary.retracted += 1

    def _notice(self, notice: dict, summary: SyncSummary) -> None:
        """A retraction notice flags the records it retracts that are in the library."""
        summary.skipped += 1
        for pmid in notice["notice_for"]:
            path = record_path(self.library, pmid)
            old = _read_json(path) if path.exists() else None
            if old is None:
                continue
            record = {**old, "retracted": True,
                      "retraction_notices": sorted(set(old.get("retraction_notices", [])) | {notice["pmid"]})}
            if record != old:
                _write_json(path, record)
                summary.updated += 1
                if not old.get("retracted"):
                    summary.retracted += 1
