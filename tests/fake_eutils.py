"""A fake NCBI E-utilities server on 127.0.0.1 for the PubMed sync tests: esearch (with the history
server) and efetch (from the history or by id, GET or POST), built from real responses.

The database holds PubmedArticle XML: the articles of ../shared/data/pubmed/eutils/pubmed*.xml exactly
as NCBI sent them, and articles written from ../shared/data/pubmed/records.json. esearch answers in
the shape of eutils/esearch1.xml (a real response), with a QueryKey and WebEnv added.

Faults: `server.faults` is a list of what the next efetch requests get instead of an answer, one
per request: "429", "500", "drop" (the connection closes before any reply), "cut" (headers and half
the body, then the connection closes), "malformed" (broken XML with status 200), "expired" (NCBI's
error for a history that is gone) or "ok" (the real answer)."""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

EUTILS = "pubmed/eutils"
ARTICLE = re.compile(r"<PubmedArticle>.*?</PubmedArticle>", re.S)
PMID = re.compile(r"<PMID[^>]*>(\d+)</PMID>")


def real_articles(shared: Path) -> dict[str, str]:
    """PMID -> the raw PubmedArticle XML of the real efetch responses."""
    found = {}
    for name in ("pubmed1.xml", "pubmed2.xml", "pubmed4.xml"):
        for xml in ARTICLE.findall((shared / EUTILS / name).read_text(encoding="utf-8")):
            found[PMID.search(xml).group(1)] = xml
    return found


def records(shared: Path) -> list[dict]:
    return json.loads((shared / "pubmed" / "records.json").read_text(encoding="utf-8"))["papers"]


def article_xml(pmid: str, title: str, abstract: str = "", authors=(), year: int | None = 2025,
                journal: str = "Journal of ME/CFS Tests", types=("Journal Article",), revised="2025-06-01",
                comments: list[tuple[str, str]] = (), labels: list[tuple[str, str]] = (), doi: str | None = None) -> str:
    """A PubmedArticle in NCBI's layout (element order of the PubMed DTD)."""
    y, m, d = revised.split("-")
    people = "".join(f'<Author ValidYN="Y"><LastName>{escape(a)}</LastName></Author>' for a in authors)
    if labels:
        text = "".join(f'<AbstractText Label="{escape(label)}">{escape(body)}</AbstractText>' for label, body in labels)
    else:
        text = f"<AbstractText>{escape(abstract)}</AbstractText>" if abstract else ""
    pubtypes = "".join(f'<PublicationType UI="D0">{escape(t)}</PublicationType>' for t in types)
    links = "".join(f'<CommentsCorrections RefType="{kind}"><RefSource>Notice</RefSource>'
                    f'<PMID Version="1">{target}</PMID></CommentsCorrections>' for kind, target in comments)
    ids = f'<ArticleId IdType="pubmed">{pmid}</ArticleId>' + (f'<ArticleId IdType="doi">{escape(doi)}</ArticleId>'
                                                             if doi else "")
    return (f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID>'
            f"<DateRevised><Year>{y}</Year><Month>{m}</Month><Day>{d}</Day></DateRevised>"
            f'<Article PubModel="Print"><Journal><JournalIssue CitedMedium="Internet"><PubDate>'
            f"{f'<Year>{year}</Year>' if year else ''}</PubDate></JournalIssue><Title>{escape(journal)}</Title></Journal>"
            f"<ArticleTitle>{escape(title)}</ArticleTitle>"
            + (f"<Abstract>{text}</Abstract>" if text else "")
            + (f'<AuthorList CompleteYN="Y">{people}</AuthorList>' if people else "")
            + f"<Language>eng</Language><PublicationTypeList>{pubtypes}</PublicationTypeList></Article>"
            f"<MedlineJournalInfo><Country>England</Country><MedlineTA>Test</MedlineTA></MedlineJournalInfo>"
            + (f"<CommentsCorrectionsList>{links}</CommentsCorrectionsList>" if links else "")
            + f"</MedlineCitation><PubmedData><ArticleIdList>{ids}</ArticleIdList></PubmedData></PubmedArticle>")


def from_record(record: dict, revised: str = "2025-06-01", **changes) -> str:
    """records.json's {pmid, title, abstract, authors, year} as a PubmedArticle."""
    return article_xml(record["pmid"], changes.pop("title", record["title"]), changes.pop("abstract", record["abstract"]),
                       record.get("authors") or (), record.get("year"), revised=revised, **changes)


class FakeEutils:
    """Start with `with FakeEutils(shared) as server:`; `server.url` is the eutils_url setting."""

    def __init__(self, shared: Path):
        eutils = shared / EUTILS
        self.esearch_template = (eutils / "esearch1.xml").read_text(encoding="utf-8")
        head = (eutils / "pubmed1.xml").read_text(encoding="utf-8")
        self.efetch_head = head[: head.index("<PubmedArticleSet>") + len("<PubmedArticleSet>")]
        self.articles: dict[str, tuple[str, str]] = {}  # pmid -> (xml, modified date) in search order
        self.faults: list[str] = []
        self.requests: list[tuple[str, dict]] = []  # (utility, parameters) of every request
        self.histories: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def add(self, xml: str, modified: str = "2025-06-01") -> str:
        pmid = PMID.search(xml).group(1)
        self.articles[pmid] = (xml, modified)
        return pmid

    # --- responses ---
    def esearch(self, params: dict) -> bytes:
        pmids = list(self.articles)
        if params.get("mindate"):  # datetype=mdat: the modification date is within [mindate, maxdate]
            low, high = (params["mindate"].replace("/", "-"), params.get("maxdate", "9999").replace("/", "-"))
            pmids = [p for p in pmids if low <= self.articles[p][1] <= high]
        webenv = f"MCID_FAKE_{len(self.histories) + 1}"
        self.histories[webenv] = pmids
        retmax = int(params.get("retmax", 20))
        ids = "".join(f"\n<Id>{p}</Id>" for p in pmids[:retmax])
        text = re.sub(r"<Count>\d+</Count><RetMax>\d+</RetMax><RetStart>\d+</RetStart>",
                      f"<Count>{len(pmids)}</Count><RetMax>{min(retmax, len(pmids))}</RetMax><RetStart>0</RetStart>"
                      f"<QueryKey>1</QueryKey><WebEnv>{webenv}</WebEnv>", self.esearch_template)
        text = re.sub(r"<IdList>.*</IdList>", f"<IdList>{ids}\n</IdList>", text, flags=re.S)
        return text.encode()

    def efetch(self, params: dict) -> bytes:
        if params.get("id"):
            pmids = [p for p in params["id"].split(",") if p in self.articles]
        else:
            start, count = int(params.get("retstart", 0)), int(params.get("retmax", 20))
            pmids = self.histories[params["WebEnv"]][start:start + count]
        body = "\n".join(self.articles[p][0] for p in pmids)
        return f"{self.efetch_head}\n{body}\n</PubmedArticleSet>\n".encode()

    # --- the server ---
    def __enter__(self) -> FakeEutils:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet (and the API key would be in the request line)
                pass

            def do_GET(self):
                self.answer(parse_qs(urlparse(self.path).query))

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                self.answer(parse_qs(self.rfile.read(length).decode()))

            def answer(self, query):
                params = {k: v[-1] for k, v in query.items()}
                utility = urlparse(self.path).path.rsplit("/", 1)[-1].removesuffix(".fcgi")
                with fake.lock:
                    fake.requests.append((utility, params))
                    fault = fake.faults.pop(0) if utility == "efetch" and fake.faults else None
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault in ("429", "500"):
                    self.send_error(int(fault), "Too Many Requests" if fault == "429" else "Internal Server Error")
                    return
                body = fake.esearch(params) if utility == "esearch" else fake.efetch(params) \
                    if utility == "efetch" else None
                if body is None:
                    self.send_error(404)
                    return
                if fault == "expired":  # what NCBI sends for a history that is gone
                    body = b'<?xml version="1.0" encoding="UTF-8" ?>\n<eFetchResult>\n\t<ERROR>Unable to obtain query #1</ERROR>\n</eFetchResult>\n'
                if fault == "malformed":
                    body = body[: len(body) * 2 // 3] + b"<PubmedArticle><MedlineCitation>&broken;</Pub"
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "cut":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/entrez/eutils"
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fetched(self) -> list[dict]:
        """The parameters of every efetch request so far."""
        return [params for utility, params in self.requests if utility == "efetch"]
